// `npm start`: runs the built server, building it first when dist/ is missing or older than src/.
import { pathToFileURL } from 'node:url';
import { ensureBuilt, entry } from './ensure-built.mjs';

ensureBuilt();
await import(pathToFileURL(entry).href);
