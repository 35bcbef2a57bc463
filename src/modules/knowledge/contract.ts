// What the user knows and wants AutoBot to know: facts (short statements with a category, tags and a
// source), a per-user category tree, and entities joined by typed relations. Everything belongs to its
// owner; an admin may share a fact with every user (read-only for them). Fact changes are announced as
// events so the search and embedding indexes follow them.
import { z } from 'zod';
import { defineContract, event, operation } from '../../kernel/contract/index.js';

/** Hard ceilings of the schema; the runtime settings below may only lower them. */
export const FACT_CONTENT_MAX = 20_000;
export const TAGS_MAX = 20;
export const TAG_MAX_LENGTH = 50;
/** `DELETE /categories/:id?moveTo=root`: facts become uncategorised, subcategories become top-level. */
export const MOVE_TO_ROOT = 'root';

const id = z.string().trim().min(1).max(100);
const page = { limit: z.coerce.number().int().min(1).max(100).default(20), cursor: z.string().max(200).optional() };

/** Tags are compared without case or surrounding space, so `?tag=Work` finds `work`. */
const tag = z
  .string()
  .trim()
  .min(1)
  .max(TAG_MAX_LENGTH)
  .transform((t) => t.normalize('NFKC').toLowerCase());
const tags = z
  .array(tag)
  .max(TAGS_MAX, `at most ${TAGS_MAX} tags`)
  .transform((ts) => [...new Set(ts)]);
const content = z.string().trim().min(1, 'must not be empty').max(FACT_CONTENT_MAX);
const source = z.string().trim().max(2000).nullable();
/** `null` (or absent) means uncategorised. */
const categoryRef = id.nullable();

/** A kind of entity or relation, e.g. `person`, `works_at`: lower-cased so `Person` and `person` are one type. */
const kind = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u, 'letters, digits, space, dot, dash and underscore, starting with a letter or digit')
  .transform((k) => k.normalize('NFKC').toLowerCase());
const attributeValue = z.union([z.string().max(2000), z.number(), z.boolean(), z.null()]);
const attributes = z
  .record(z.string().trim().min(1).max(64), attributeValue)
  .refine((a) => Object.keys(a).length <= 50, 'at most 50 attributes');
const entityName = z.string().trim().min(1).max(200);

export const factView = z.object({
  id: z.string(),
  content: z.string(),
  categoryId: z.string().nullable(),
  tags: z.array(z.string()),
  source: z.string().nullable(),
  shared: z.boolean(),
  /** Who owns it: the caller, or (for a shared fact) someone else. */
  ownerId: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

interface CategoryNode {
  id: string;
  name: string;
  parentId: string | null;
  /** Facts filed directly in this category. */
  factCount: number;
  /** Facts in this category and all its subcategories. */
  totalFactCount: number;
  createdAt: string;
  children: CategoryNode[];
}
const categoryNode: z.ZodType<CategoryNode> = z.lazy(() =>
  z.object({
    id: z.string(),
    name: z.string(),
    parentId: z.string().nullable(),
    factCount: z.number().int(),
    totalFactCount: z.number().int(),
    createdAt: z.string(),
    children: z.array(categoryNode),
  }),
);
const categoryView = z.object({ id: z.string(), name: z.string(), parentId: z.string().nullable(), createdAt: z.string() });

const entityView = z.object({
  id: z.string(),
  name: z.string(),
  type: z.string(),
  attributes: z.record(z.string(), attributeValue),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const relationView = z.object({ id: z.string(), fromId: z.string(), toId: z.string(), type: z.string(), createdAt: z.string() });
const relationEnd = z.object({ id: z.string(), name: z.string(), type: z.string() });
const linkedRelation = z.object({ id: z.string(), type: z.string(), entity: relationEnd, createdAt: z.string() });

const factEventBase = z.object({
  factId: z.string(),
  ownerId: z.string(),
  shared: z.boolean(),
  categoryId: z.string().nullable(),
  tags: z.array(z.string()),
  /** Increases by one with every stored change of the fact: a subscriber keeps the highest it has seen,
   * because events of different types travel in different streams and may arrive out of order. */
  rev: z.number().int(),
});
const factChange = z.enum(['content', 'categoryId', 'tags', 'source', 'shared']);

export const knowledgeSettings = z.object({
  maxFactLength: z.number().int().min(100).max(FACT_CONTENT_MAX).default(4000).describe('Longest fact content, in characters'),
  maxCategoriesPerUser: z.number().int().min(1).max(10_000).default(500).describe('Categories one user may have'),
  maxCategoryDepth: z.number().int().min(1).max(20).default(8).describe('Deepest nesting of categories (1 = top level only)'),
  maxRelationsPerEntity: z.number().int().min(1).max(100_000).default(1000).describe('Relations one entity may take part in, each way'),
});

const notUsed = z.null();

export const knowledgeContract = defineContract({
  id: 'knowledge',
  summary: 'Facts with categories, tags and sources; a category tree; entities and typed relations. Owner-scoped, facts shareable by admins.',
  operations: {
    listCategories: operation({
      input: z.object({}),
      output: z.object({ items: z.array(categoryNode), uncategorizedFactCount: z.number().int() }),
      idempotent: true,
      summary: "The caller's category tree, with the facts filed in each category and in its subtree",
    }),
    createCategory: operation({
      input: z.object({ name: z.string().trim().min(1).max(100), parentId: id.nullable().optional() }),
      output: categoryView,
      summary: 'A category, top-level or under one of the caller\'s categories; sibling names are unique regardless of case',
    }),
    updateCategory: operation({
      input: z.object({ id, name: z.string().trim().min(1).max(100).optional(), parentId: id.nullable().optional() }),
      output: categoryView,
      summary: 'Renames a category, or moves it with its subcategories (parentId null: top level); its facts stay in it',
    }),
    deleteCategory: operation({
      input: z.object({
        id,
        moveTo: id.optional().describe(`Where its facts and subcategories go: another category's id, or "${MOVE_TO_ROOT}" (uncategorised / top level)`),
      }),
      output: notUsed,
      summary: 'Deletes a category; refused with 409 while it holds facts or subcategories, unless moveTo says where they go',
    }),

    createFact: operation({
      input: z.object({
        content,
        categoryId: categoryRef.optional(),
        tags: tags.optional(),
        source: source.optional(),
        shared: z.boolean().optional().describe('Admins only'),
      }),
      output: factView,
      summary: 'A fact; the same content (ignoring case, spacing, Unicode forms and trailing punctuation) twice for one owner answers 409 with the existing id',
    }),
    listFacts: operation({
      input: z.object({
        ...page,
        categoryId: id.optional().describe('This category and its subcategories'),
        tag: tag.optional(),
        q: z.string().trim().min(1).max(200).optional().describe('Every word must appear in the content (case-insensitive)'),
      }),
      output: z.object({ items: z.array(factView), nextCursor: z.string().nullable() }),
      idempotent: true,
      summary:
        "The caller's facts and the shared ones, newest first. A page reads at most 2000 facts, so with a rare filter it may hold fewer than `limit` items while nextCursor goes on",
    }),
    getFact: operation({ input: z.object({ id }), output: factView, idempotent: true }),
    updateFact: operation({
      input: z.object({
        id,
        content: content.optional(),
        categoryId: categoryRef.optional(),
        tags: tags.optional(),
        source: source.optional(),
        shared: z.boolean().optional().describe('Admins only'),
      }),
      output: factView,
    }),
    deleteFact: operation({ input: z.object({ id }), output: notUsed }),
    reindexFacts: operation({
      input: z.object({}),
      output: z.object({ queued: z.number().int() }),
      summary: "Admin: writes every fact's vector again in the background (after the facts collection was reset for another model)",
    }),

    listEntities: operation({
      input: z.object({
        ...page,
        type: kind.optional(),
        q: z.string().trim().min(1).max(200).optional().describe('Part of the name (case-insensitive)'),
      }),
      output: z.object({ items: z.array(entityView), nextCursor: z.string().nullable() }),
      idempotent: true,
      summary: "The caller's entities, newest first",
    }),
    createEntity: operation({
      input: z.object({ name: entityName, type: kind, attributes: attributes.optional() }),
      output: entityView,
      summary: 'An entity; the same name and type twice for one owner answers 409 with the existing id',
    }),
    getEntity: operation({
      input: z.object({ id }),
      output: entityView.extend({ relations: z.object({ outgoing: z.array(linkedRelation), incoming: z.array(linkedRelation) }) }),
      idempotent: true,
      summary: 'An entity with its relations both ways, each naming the entity at the other end',
    }),
    updateEntity: operation({
      input: z.object({ id, name: entityName.optional(), type: kind.optional(), attributes: attributes.optional() }),
      output: entityView,
      summary: 'Renames, retypes or replaces the attributes of an entity',
    }),
    deleteEntity: operation({ input: z.object({ id }), output: notUsed, summary: 'Deletes an entity and every relation it takes part in' }),
    createRelation: operation({
      input: z.object({ fromId: id, toId: id, type: kind }),
      output: relationView,
      summary: "A typed relation between two of the caller's entities; the same one twice answers 409 with the existing id",
    }),
    deleteRelation: operation({ input: z.object({ id }), output: notUsed }),
  },
  events: {
    'knowledge.fact.created': event({ payload: factEventBase.extend({ content: z.string() }) }),
    'knowledge.fact.updated': event({ payload: factEventBase.extend({ content: z.string(), changes: z.array(factChange) }) }),
    'knowledge.fact.deleted': event({ payload: factEventBase }),
  },
  errors: ['invalid_input', 'unauthenticated', 'forbidden', 'not_found', 'conflict'],
  settings: knowledgeSettings,
  routes: [
    { method: 'GET', path: '/knowledge/categories', operation: 'listCategories', auth: 'user' },
    { method: 'POST', path: '/knowledge/categories', operation: 'createCategory', auth: 'user', status: 201 },
    { method: 'PATCH', path: '/knowledge/categories/:id', operation: 'updateCategory', auth: 'user' },
    { method: 'DELETE', path: '/knowledge/categories/:id', operation: 'deleteCategory', auth: 'user', status: 204 },
    { method: 'POST', path: '/knowledge/facts', operation: 'createFact', auth: 'user', status: 201 },
    { method: 'GET', path: '/knowledge/facts', operation: 'listFacts', auth: 'user' },
    { method: 'GET', path: '/knowledge/facts/:id', operation: 'getFact', auth: 'user' },
    { method: 'PATCH', path: '/knowledge/facts/:id', operation: 'updateFact', auth: 'user' },
    { method: 'DELETE', path: '/knowledge/facts/:id', operation: 'deleteFact', auth: 'user', status: 204 },
    { method: 'POST', path: '/knowledge/facts/reindex', operation: 'reindexFacts', auth: 'admin', status: 202 },
    { method: 'GET', path: '/knowledge/entities', operation: 'listEntities', auth: 'user' },
    { method: 'POST', path: '/knowledge/entities', operation: 'createEntity', auth: 'user', status: 201 },
    { method: 'GET', path: '/knowledge/entities/:id', operation: 'getEntity', auth: 'user' },
    { method: 'PATCH', path: '/knowledge/entities/:id', operation: 'updateEntity', auth: 'user' },
    { method: 'DELETE', path: '/knowledge/entities/:id', operation: 'deleteEntity', auth: 'user', status: 204 },
    { method: 'POST', path: '/knowledge/relations', operation: 'createRelation', auth: 'user', status: 201 },
    { method: 'DELETE', path: '/knowledge/relations/:id', operation: 'deleteRelation', auth: 'user', status: 204 },
  ],
});
