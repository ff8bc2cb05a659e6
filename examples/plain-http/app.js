'use strict';
// A plain `http` server with no tracing code. From the repository root:
//
//   npm run build && node -r ./register examples/plain-http/app.js
//   curl http://127.0.0.1:3000/hello
//
// Each request gets a server span; the outbound call the handler makes is a
// client span under it, and carries the trace to /time, whose server span
// continues the same trace. `--once` sends one request itself, then exits.
const http = require('http');

const server = http.createServer((req, res) => {
  if (req.url === '/time') {
    res.end(new Date().toISOString());
    return;
  }
  if (req.url === '/hello') {
    http
      .get(`http://127.0.0.1:${server.address().port}/time`, (upstream) => {
        let time = '';
        upstream.setEncoding('utf8');
        upstream.on('data', (chunk) => (time += chunk));
        upstream.on('end', () => res.end(`hello, it is ${time}\n`));
      })
      .on('error', (err) => {
        res.statusCode = 502;
        res.end(`${err.message}\n`);
      });
    return;
  }
  res.statusCode = 404;
  res.end();
});

server.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}/hello`;
  if (!process.argv.includes('--once')) {
    console.log(`listening; try: curl ${url}`);
    return;
  }
  http.get(url, (res) => {
    res.pipe(process.stdout);
    res.on('end', () => server.close());
  });
});
