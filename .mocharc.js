'use strict';
// Tests are TypeScript, compiled on the fly (type checking is `npm run lint`).
process.env.TS_NODE_TRANSPILE_ONLY = 'true';
process.env.TS_NODE_PROJECT = require('path').join(__dirname, 'tsconfig.json');

module.exports = {
  require: ['ts-node/register', 'test/hooks.ts'],
  extension: ['ts'],
  spec: ['test/**/*.test.ts'],
  timeout: 20000,
  slow: 1000,
  reporter: 'spec',
};
