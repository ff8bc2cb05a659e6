'use strict';
// `node -r ./register app.js` (from a checkout) and
// `node -r opentracing-instrumentation/register app.js` (installed package).
// The compiled code lives in dist/: run `npm run build` first in a checkout.
require('./dist/register');
