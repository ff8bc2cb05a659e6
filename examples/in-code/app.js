'use strict';
// Everything in code, no `-r`: the tracer, the patches with a custom
// response hook and server options, and a custom current-span getter for an
// application that keeps its own request context. From the repository root:
//
//   npm run build && node examples/in-code/app.js
//   curl http://127.0.0.1:3000/orders/42
//
// `--once` sends one request itself, then exits.
const { AsyncLocalStorage } = require('async_hooks');
const {
  initTracerFromEnv,
  installAllPatches,
  serverSpanOf,
  setCurrentSpanFunc,
} = require('opentracing-instrumentation');

// A jaeger tracer from the JAEGER_* environment (agent on localhost:6832 by
// default), registered as the OpenTracing global tracer.
const tracer = initTracerFromEnv({ serviceName: 'example-in-code' });

installAllPatches({
  http: {
    // every outbound http call: note the content type of the answer
    responseHook: (res, span) => span.setTag('http.content_type', String(res.headers['content-type'])),
  },
  'http-server': {
    ignorePaths: ['/healthz'],
    callerNameHeaders: ['x-caller-name'],
  },
});

// The application's own request context, as many frameworks keep one. The
// patches ask it for the current span instead of using their own.
const requestContext = new AsyncLocalStorage();
setCurrentSpanFunc(() => requestContext.getStore()?.span);

// Required after install here, but before works just as well.
const http = require('http');

function getJson(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { 'x-caller-name': 'example-in-code' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
}

const server = http.createServer((req, res) => {
  const base = `http://127.0.0.1:${server.address().port}`;
  if (req.url === '/healthz') {
    res.end('ok');
    return;
  }
  const stock = /^\/stock\/(\d+)$/.exec(req.url);
  if (stock) {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ item: Number(stock[1]), available: 3 }));
    return;
  }
  const order = /^\/orders\/(\d+)$/.exec(req.url);
  if (!order) {
    res.statusCode = 404;
    res.end();
    return;
  }
  // The application's own span for its work, under the request's server span;
  // its context makes it the parent of the calls made for this order.
  const span = tracer.startSpan('load-order', { childOf: serverSpanOf(req) });
  span.setTag('order.id', order[1]);
  requestContext.run({ span }, async () => {
    try {
      const stockInfo = await getJson(`${base}/stock/${order[1]}`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ order: Number(order[1]), stock: stockInfo }));
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err.message));
    } finally {
      span.finish();
    }
  });
});

server.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}/orders/42`;
  if (!process.argv.includes('--once')) {
    console.log(`listening; try: curl ${url}`);
    return;
  }
  getJson(url).then((body) => {
    console.log(JSON.stringify(body));
    server.close();
  });
});
