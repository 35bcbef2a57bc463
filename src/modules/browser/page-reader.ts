// Turns a rendered page's HTML into readable Markdown: Readability picks the main content (as Firefox's
// reader view does), Turndown writes it as Markdown; linkedom is the DOM both work on (no browser needed).
// The three are loaded on the first page read: a process that reads none does not carry them.
import type { parseHTML } from 'linkedom';
import type TurndownService from 'turndown';

type Doc = ReturnType<typeof parseHTML>['document'];

export interface ReadPage {
  title: string;
  markdown: string;
}

let libraries: Promise<{ parseHTML: typeof parseHTML; Readability: typeof import('@mozilla/readability').Readability; turndown: TurndownService }> | undefined;

function load() {
  libraries ??= (async () => {
    const [linkedom, readability, { default: TurndownService }] = await Promise.all([import('linkedom'), import('@mozilla/readability'), import('turndown')]);
    const turndown = new TurndownService({ headingStyle: 'atx', codeBlockStyle: 'fenced', bulletListMarker: '-' });
    // Nothing a reader wants, and their text would land in the Markdown verbatim.
    turndown.remove(['script', 'style', 'noscript', 'template', 'iframe', 'object', 'embed', 'svg', 'canvas', 'form', 'button', 'select', 'input', 'textarea']);
    return { parseHTML: linkedom.parseHTML, Readability: readability.Readability, turndown };
  })();
  return libraries;
}

/** Rewrites relative links and image sources against the page URL, so the Markdown's links work elsewhere. */
function absolutize(document: Doc, base: string): void {
  for (const [selector, attr] of [
    ['a[href]', 'href'],
    ['img[src]', 'src'],
  ] as const) {
    for (const el of document.querySelectorAll(selector)) {
      const value = el.getAttribute(attr);
      if (!value) continue;
      try {
        el.setAttribute(attr, new URL(value, base).href);
      } catch {
        el.removeAttribute(attr);
      }
    }
  }
}

export async function readPage(html: string, url: string, fallbackTitle = ''): Promise<ReadPage> {
  const { parseHTML, Readability, turndown } = await load();
  const { document } = parseHTML(html);
  absolutize(document, url);
  const pageTitle = document.querySelector('title')?.textContent?.trim() ?? fallbackTitle;
  // Readability edits the document it reads; the fallback needs the untouched body.
  const bodyHtml = document.body?.innerHTML ?? html;
  let article: ReturnType<InstanceType<typeof Readability>['parse']> = null;
  try {
    article = // linkedom's document stands in for the DOM's; Readability only walks it.
    new Readability(document as unknown as ConstructorParameters<typeof Readability>[0], { charThreshold: 200 }).parse();
  } catch {
    article = null;
  }
  const content = article?.content && (article.textContent ?? '').trim().length > 0 ? article.content : bodyHtml;
  const markdown = turndown.turndown(content).replace(/\n{3,}/g, '\n\n').trim();
  return { title: (article?.title ?? '').trim() || pageTitle || fallbackTitle, markdown };
}

/** Markdown of the whole page (a session's content: everything on it, not just the article). */
export async function pageMarkdown(html: string, url: string): Promise<string> {
  const { parseHTML, turndown } = await load();
  const { document } = parseHTML(html);
  absolutize(document, url);
  return turndown.turndown(document.body?.innerHTML ?? '').replace(/\n{3,}/g, '\n\n').trim();
}
