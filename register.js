'use strict';
// `node -r ./register app.js` (from a checkout) and
// `node -r opentracing-instrumentation/register app.js` (installed package).
// The compiled code lives in dist/: run `npm run build` first in a checkout.
const { isMainThread, parentPort } = require('worker_threads');
// Node 20 runs `-r` preloads on the thread of module customization hooks
// too (ours, registered for an ES module app, or anyone's). No application
// code runs there: a tracer would only delay the start. A worker the
// application starts has a parentPort; that thread has none.
if (isMainThread || parentPort !== null) require('./dist/register');
