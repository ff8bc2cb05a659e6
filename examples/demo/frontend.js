'use strict';
// The demo's front service: a plain `http` server, as an application would
// write it. `npm run demo` runs it under `node -r ./register` (service name
// demo-frontend). Its only tracing code is one `traced()` around the
// rendering step; every other span comes from the patches.
//
// GET /users/:id
//   Redis GET (cache) -> on a miss: PostgreSQL SELECT, Redis SET
//   -> the backend over axios (profile) and over fetch (recommendations)
//   -> renderPage (a traced function)
const http = require('http');
const axios = require('axios');
const { traced } = require('opentracing-instrumentation');

const BACKEND = process.env.BACKEND_URL;
const PG_URL = process.env.DEMO_PG_URL || ''; // empty: PostgreSQL is skipped
const REDIS_URL = process.env.DEMO_REDIS_URL || ''; // empty: Redis is skipped
const KEY_PREFIX = process.env.DEMO_KEY_PREFIX || `demo:${process.pid}:`;

const pool = PG_URL ? new (require('pg').Pool)({ connectionString: PG_URL, max: 2 }) : null;
const redis = REDIS_URL ? new (require('ioredis'))(REDIS_URL, { maxRetriesPerRequest: 1 }) : null;

const USERS_SQL =
  "SELECT id, name FROM (VALUES (1, 'Ada'), (2, 'Grace'), (7, 'Linus')) AS users(id, name) WHERE id = $1";

async function loadUser(id) {
  const key = `${KEY_PREFIX}user:${id}`;
  const cached = redis ? await redis.get(key) : null;
  if (cached) return { ...JSON.parse(cached), source: 'cache' };
  let user = { id, name: `user ${id}` };
  if (pool) {
    const { rows } = await pool.query(USERS_SQL, [id]);
    if (rows[0]) user = rows[0];
  }
  if (redis) await redis.set(key, JSON.stringify(user), 'EX', 60);
  return { ...user, source: pool ? 'database' : 'default' };
}

const renderPage = traced(
  function renderPage(user, profile, recommendations) {
    return JSON.stringify({ user, profile, recommendations });
  },
  { onStart: (span, user) => span.setTag('user.id', user.id) },
);

async function handleUser(id, res) {
  const user = await loadUser(id);
  const [profile, recs] = await Promise.all([
    axios.get(`${BACKEND}/profile/${id}`),
    fetch(`${BACKEND}/recommendations/${id}`),
  ]);
  const recommendations = await recs.json();
  if (!recs.ok) {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: `recommendations: ${recommendations.error}` }));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(renderPage(user, profile.data, recommendations));
}

const server = http.createServer((req, res) => {
  const m = /^\/users\/(\d+)$/.exec(req.url);
  if (!m) {
    res.writeHead(404);
    res.end();
    return;
  }
  handleUser(Number(m[1]), res).catch((err) => {
    res.writeHead(500);
    res.end(String(err && err.message));
  });
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ service: 'demo-frontend', port: server.address().port })}\n`);
});

process.stdin.on('end', () => {
  server.close();
  if (pool) pool.end();
  if (redis) redis.disconnect(); // not quit(): its QUIT would be a trace of its own
});
process.stdin.resume();
