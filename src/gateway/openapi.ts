// OpenAPI 3.1 generated from the contracts' route declarations and zod schemas, so the REST surface, its
// validation and its documentation cannot drift apart.
import { z } from 'zod';
import type { AnyContract, Operations, RouteDef } from '../kernel/contract/define.js';
import { errorCodes, type ErrorCode } from '../kernel/contract/errors.js';

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const s = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonSchema;
  delete s.$schema;
  return s;
}

const openApiPath = (p: string) => p.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const pathParams = (p: string) => [...p.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);

const baseErrors: ErrorCode[] = ['invalid_input', 'rate_limited', 'internal', 'unavailable', 'timeout'];

function errorsFor(contract: AnyContract, route: RouteDef): ErrorCode[] {
  const codes = new Set<ErrorCode>([...baseErrors, ...contract.errors]);
  if (route.auth !== 'public') codes.add('unauthenticated');
  if (route.auth === 'admin') codes.add('forbidden');
  if (['POST', 'PUT', 'PATCH'].includes(route.method)) codes.add('payload_too_large').add('unsupported_media_type');
  return [...codes];
}

export function buildOpenApi(contracts: AnyContract[], info: { version: string }): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const contract of contracts) {
    for (const route of contract.routes) {
      const op = (contract.operations as Operations)[route.operation]!;
      const params = pathParams(route.path);
      const input = jsonSchema(op.input, 'input');
      const props = (input.properties ?? {}) as Record<string, JsonSchema>;
      const required = new Set((input.required as string[] | undefined) ?? []);
      const parameters: unknown[] = params.map((name) => ({
        name,
        in: 'path',
        required: true,
        schema: props[name] ?? { type: 'string' },
      }));
      const hasBody = ['POST', 'PUT', 'PATCH'].includes(route.method);
      let requestBody: unknown;
      if (op.kind === 'upload') {
        // The body is the raw upload (a multipart form); the operation's input comes from the query.
        for (const [name, schema] of Object.entries(props)) {
          if (!params.includes(name)) parameters.push({ name, in: 'query', required: required.has(name), schema });
        }
        const bodySchema = op.form ? jsonSchema(op.form, 'input') : { type: 'string', format: 'binary' };
        requestBody = { required: true, content: Object.fromEntries(op.bodyTypes.map((t) => [t, { schema: bodySchema }])) };
      } else if (!hasBody) {
        for (const [name, schema] of Object.entries(props)) {
          if (!params.includes(name)) parameters.push({ name, in: 'query', required: required.has(name), schema });
        }
      } else if (!route.input) {
        const bodyProps = Object.fromEntries(Object.entries(props).filter(([n]) => !params.includes(n)));
        const bodyRequired = [...required].filter((n) => !params.includes(n));
        requestBody = {
          required: bodyRequired.length > 0,
          content: { 'application/json': { schema: { ...input, properties: bodyProps, ...(bodyRequired.length ? { required: bodyRequired } : { required: undefined }) } } },
        };
      } else {
        // A custom mapping: the body is described by the operation input as a whole (a route with a
        // stream alternative takes the stream operation's input, which adds its switch, e.g. `stream`).
        const bodyOp = route.stream ? (contract.operations as Operations)[route.stream.operation] : undefined;
        requestBody = { required: true, content: { 'application/json': { schema: bodyOp ? jsonSchema(bodyOp.input, 'input') : input } } };
      }
      const status = String(route.status ?? 200);
      const responses: Record<string, unknown> = {};
      if (status === '204') responses[status] = { description: 'Done, no content' };
      else if (op.kind === 'stream') {
        responses[status] = { description: 'NDJSON stream, one chunk a line', content: { 'application/x-ndjson': { schema: jsonSchema(op.chunk, 'output') } } };
      } else if (op.kind === 'download') {
        responses[status] = {
          description: 'The bytes, with Content-Type, Content-Length and Content-Disposition',
          headers: { 'Content-Disposition': { schema: { type: 'string' }, description: 'attachment (or inline) with a safe file name' } },
          content: Object.fromEntries((op.mediaTypes ?? ['application/octet-stream']).map((t) => [t, { schema: { type: 'string', format: 'binary' } }])),
        };
      } else {
        const alt = route.stream ? (contract.operations as Operations)[route.stream.operation] : undefined;
        responses[status] = {
          description: alt ? 'Success: JSON, or an NDJSON stream (one chunk a line) when the request asks to stream' : 'Success',
          content: {
            'application/json': { schema: jsonSchema(op.output, 'output') },
            ...(alt?.kind === 'stream' ? { 'application/x-ndjson': { schema: jsonSchema(alt.chunk, 'output') } } : {}),
          },
        };
      }
      for (const code of errorsFor(contract, route)) {
        const s = String(errorCodes[code].status);
        const existing = responses[s] as { description: string } | undefined;
        responses[s] = {
          description: existing ? `${existing.description}, ${code}` : code,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } },
        };
      }
      const key = openApiPath(`/api/v1${route.path}`);
      paths[key] ??= {};
      paths[key][route.method.toLowerCase()] = {
        operationId: `${contract.id}.${route.operation}`,
        tags: [contract.id],
        summary: route.summary ?? op.summary ?? route.operation,
        ...(route.auth === 'public' ? { security: [] } : { security: [{ bearer: [] }] }),
        'x-autobot-auth': route.auth,
        'x-autobot-rate-limit': route.rateLimit ?? 'default',
        ...(parameters.length ? { parameters } : {}),
        ...(requestBody ? { requestBody } : {}),
        responses,
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'AutoBot API', version: info.version, description: 'Generated from the module contracts.' },
    servers: [{ url: '/' }],
    tags: contracts.filter((c) => c.routes.length).map((c) => ({ name: c.id, description: c.summary })),
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Access token from /auth/login, or an API key' } },
      schemas: {
        ErrorEnvelope: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'requestId'],
              properties: {
                code: { type: 'string', enum: Object.keys(errorCodes) },
                message: { type: 'string' },
                requestId: { type: 'string' },
                details: {},
              },
            },
          },
        },
      },
    },
  };
}
