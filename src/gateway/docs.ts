// A browsable API viewer at /docs: the swagger-ui-dist bundle, pointed at the generated OpenAPI document.
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { type Router } from 'express';

// Only the folder is needed; importing the package itself would load the multi-megabyte UI bundle into the server.
const assets = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

export function docsRouter(specUrl: string): Router {
  const router = express.Router();
  const init = `window.onload = function () {
  window.ui = SwaggerUIBundle({ url: ${JSON.stringify(specUrl)}, dom_id: '#swagger-ui', deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });
};\n`;
  // swagger-ui's own index.html loads this file; serving ours first points it at our spec.
  router.get('/swagger-initializer.js', (_req, res) => {
    res.type('application/javascript').send(init);
  });
  router.use(express.static(assets, { index: 'index.html', maxAge: '1h' }));
  return router;
}
