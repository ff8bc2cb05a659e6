'use strict';
// The demo's second service: an ordinary Express app with no tracing code.
// `npm run demo` runs it under `node -r ./register` (service name
// demo-backend); its server spans continue the traces of the front service's
// axios and fetch calls, and are named after the Express routes.
const express = require('express');

const app = express();

app.get('/profile/:id', (req, res) => {
  setTimeout(() => res.json({ id: Number(req.params.id), plan: 'pro', since: 2019 }), 8);
});

app.get('/recommendations/:id', (req, res) => {
  if (req.params.id === '7') {
    // a failing dependency, to show what an error looks like in a trace
    res.status(503).json({ error: 'recommendation engine overloaded' });
    return;
  }
  setTimeout(() => res.json({ items: ['tea', 'teapot', 'kettle'] }), 12);
});

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ service: 'demo-backend', port: server.address().port })}\n`);
});

// The demo runner closes our stdin when it is done: close down, let Node exit
// (register flushes the spans on the way out).
process.stdin.on('end', () => server.close());
process.stdin.resume();
