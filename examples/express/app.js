'use strict';
// An Express app with no tracing code. From the repository root:
//
//   npm run build && node -r ./register examples/express/app.js
//   curl http://127.0.0.1:3000/users/42
//
// Server spans are named after the Express routes (`GET /users/:id`); the
// axios call in the handler is a client span under the request's span, and
// the /api/profile/:id server span continues the same trace. `--once` sends
// one request itself, then exits.
const express = require('express');
const axios = require('axios');

const app = express();
const api = express.Router();

api.get('/profile/:id', (req, res) => {
  res.json({ id: Number(req.params.id), plan: 'pro' });
});
app.use('/api', api);

app.get('/users/:id', async (req, res, next) => {
  try {
    const { data: profile } = await axios.get(`http://127.0.0.1:${server.address().port}/api/profile/${req.params.id}`);
    res.json({ user: req.params.id, profile });
  } catch (err) {
    next(err);
  }
});

const server = app.listen(Number(process.env.PORT || 3000), '127.0.0.1', async () => {
  const url = `http://127.0.0.1:${server.address().port}/users/42`;
  if (!process.argv.includes('--once')) {
    console.log(`listening; try: curl ${url}`);
    return;
  }
  const { data } = await axios.get(url);
  console.log(JSON.stringify(data));
  server.close();
});
