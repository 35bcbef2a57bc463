// Local web servers for the browser tests: an allowed site (pages, redirects, forms, a page whose
// sub-resources point at a forbidden address) and a forbidden one that counts every connection it gets.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface CountingServer {
  port: number;
  /** TCP connections accepted (whatever came of them). */
  connections: () => number;
  close(): Promise<void>;
}

function closeServer(server: http.Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Listens on every loopback spelling (dual-stack `::`, so 127.0.0.1, ::1 and ::ffff:127.0.0.1 all land here). */
export async function startForbiddenServer(): Promise<CountingServer> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) => res.end('<title>secret</title>internal secret'));
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '::', ipv6Only: false }, () => resolve()));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, close: () => closeServer(server, sockets) };
}

const article = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>${title}</h1>${body}</article>
<footer>footer text</footer></body></html>`;

const para = (n: number) => Array.from({ length: n }, (_, i) => `<p>Paragraph ${i + 1} of the article: AutoBot reads pages as Markdown, with <a href="/link-${i}">a relative link</a> and <strong>bold words</strong> that survive the trip through Readability and Turndown.</p>`).join('\n');

export interface SiteServer extends CountingServer {
  url: string;
  /** Paths requested, in order. */
  requests: string[];
}

/** The allowed site. `forbiddenPort` is where its hostile pages point their sub-resources and redirects. */
export async function startSite(forbiddenPort: number): Promise<SiteServer> {
  let connections = 0;
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const bad = `127.0.0.1:${forbiddenPort}`;
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    requests.push(u.pathname + u.search);
    const html = (s: string, status = 200) => res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(s);
    switch (u.pathname) {
      case '/':
      case '/article':
        return html(article('Reading with AutoBot', para(8)));
      case '/redirect':
        return void res.writeHead(302, { location: u.searchParams.get('to') ?? '/' }).end();
      case '/missing':
        return html('<title>gone</title>not here', 404);
      case '/form':
        return html(`<!doctype html><title>Form</title>
<input id="name"><textarea id="notes"></textarea>
<select id="colour"><option value="red">Red</option><option value="blue">Blue</option></select>
<button id="go" onclick="document.getElementById('out').textContent = 'Hello ' + document.getElementById('name').value + ' in ' + document.getElementById('colour').value">Go</button>
<div id="hover-target" onmouseover="this.textContent='hovered'">not yet</div>
<a id="next" href="/article">next page</a>
<a id="evil" href="http://${bad}/">internal link</a>
<p id="out"></p>
<div id="late"></div>
<script>setTimeout(() => { document.getElementById('late').innerHTML = '<span id="arrived">arrived</span>'; }, 300)</script>
<div style="height:4000px"></div><p id="bottom">bottom</p>`);
      case '/hostile':
        // Every way a page can make the browser reach an address: none may get through.
        return html(`<!doctype html><title>Hostile</title><p>hostile page</p>
<img src="http://${bad}/pixel.png"><img src="http://localhost:${forbiddenPort}/a.png"><img src="http://[::1]:${forbiddenPort}/b.png">
<link rel="stylesheet" href="http://${bad}/s.css"><script src="http://${bad}/s.js"></script>
<iframe src="http://${bad}/frame"></iframe>
<script>
  fetch('http://${bad}/fetch').catch(() => {});
  fetch('https://${bad}/tls').catch(() => {});
  try { new WebSocket('ws://${bad}/ws'); } catch {}
  navigator.sendBeacon && navigator.sendBeacon('http://${bad}/beacon', 'x');
</script>`);
      default:
        return html('<title>nothing</title>', 404);
    }
  });
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, requests, connections: () => connections, close: () => closeServer(server, sockets) };
}
