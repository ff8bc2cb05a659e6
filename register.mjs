// `node --import opentracing-instrumentation/register.mjs app.mjs` (installed
// package) or `node --import ./register.mjs app.mjs` (a checkout, after
// `npm run build`): what `-r register` does, plus the ES module loader
// (import-in-the-middle) for whatever entry point follows, registered before
// the application's module graph is resolved.
import { createRequire } from 'node:module';
import { isMainThread, parentPort } from 'node:worker_threads';

const require = createRequire(import.meta.url);
// No application code runs on the thread of module customization hooks.
if (isMainThread || parentPort !== null) {
  require('./register.js');
  require('./dist/patcher.js').hookEsmImports();
}
