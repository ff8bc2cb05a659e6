import assert from 'assert';
import * as http from 'http';
import { spanInContext } from '../src';
import { CANARY, findSecret } from './helpers/canary';
import { startHttpServer, type TestServer } from './helpers/servers';
import { createTestTracer, useTracing, waitForSpans } from './helpers/tracing';

describe('secrets stay out of spans', () => {
  describe('the canary scanner itself', () => {
    it('finds the canary in an operation name, a tag and an error log', () => {
      // This tracer's span is checked here and never finished (so never reported
      // to the suite-wide scan): no accounting for it.
      const t = createTestTracer({ accounted: false });
      const span = t.tracer.startSpan('op') as unknown as Parameters<typeof findSecret>[0] & { setTag: Function; log: Function };
      span.setTag('k', `x${CANARY}y`);
      span.log({ event: 'error', 'error.object': new Error(`bad ${CANARY}`) });
      assert.deepStrictEqual(findSecret(span), ['tag k', 'log[0] error.object']);
      assert.deepStrictEqual(findSecret({ operationName: `GET ${CANARY}` }), ['operationName']);
      assert.deepStrictEqual(findSecret({ operationName: 'GET', _tags: [{ key: 'a', value: 'b' }] }), []);
      t.close();
    });
  });

  describe('http', () => {
    const t = useTracing(['http', 'https']);
    let server: TestServer;
    before(async () => (server = await startHttpServer()));
    after(() => server.close());

    it('URL userinfo, secret query values and Authorization never reach a span', async () => {
      const parent = t.tracer.startSpan('parent');
      const urls = [
        `http://user:${CANARY}@127.0.0.1:${server.port}/a`,
        `http://${CANARY}@127.0.0.1:${server.port}/b`,
        `${server.origin}/c?token=${CANARY}&password=${CANARY}&sig=${CANARY}&api_key=${CANARY}&access_token=${CANARY}`,
        `${server.origin}/status/503?secret=${CANARY}`,
      ];
      await spanInContext(parent, () =>
        Promise.all(
          urls.map(
            (u) =>
              new Promise<void>((resolve, reject) => {
                http
                  .get(u, { headers: { authorization: `Bearer ${CANARY}`, cookie: `session=${CANARY}` } }, (res) => {
                    res.resume();
                    res.on('end', resolve);
                  })
                  .on('error', reject);
              }),
          ),
        ),
      );
      parent.finish();
      const spans = await waitForSpans(t, urls.length + 1);
      assert.strictEqual(server.received.length, urls.length);
      for (const r of server.received) assert.strictEqual(r.headers.authorization, `Bearer ${CANARY}`);
      for (const s of spans) assert.deepStrictEqual(findSecret(s), [], s.operationName);
    });

    it('an auth option is not recorded', async () => {
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: server.port, path: '/auth', auth: `user:${CANARY}` }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
      const [span] = await waitForSpans(t, 1);
      assert.deepStrictEqual(findSecret(span), []);
    });
  });
});
