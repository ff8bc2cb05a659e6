/**
 * Secrets that used to reach spans (issue 12, item 7): more secret query
 * names, `;` pairs, path parameters, credentials inside a URL-valued
 * parameter; SQL literals; values PostgreSQL and Redis echo in their errors.
 * Every span is scanned for the canary (test/helpers/canary.ts).
 */
import assert from 'assert';
import Redis from 'ioredis';
import pg from 'pg';
import * as undici from 'undici';
import { spanInContext } from '../src';
import { redactPath, redactUrl } from '../src/redact';
import { CANARY, findSecret } from './helpers/canary';
import { PG, REDIS, uniqueName } from './helpers/db';
import { record } from './helpers/reliability';
import { request } from './helpers/requests';
import { startHttpServer, type TestServer } from './helpers/servers';
import { tag, useTracing, type JaegerSpan } from './helpers/tracing';

const NEW_NAMES = [
  'jwt', 'assertion', 'client_assertion', 'SAMLResponse', 'subscription-key', 'ticket', 'sid', 'PHPSESSID',
  'pw', 'otp', 'license_key', 'app_key', 'hmac', 'bearer',
];

/** URLs that carry the canary where a secret would be, and what stays. */
const URLS: Array<[string, string]> = [
  [`/a?${NEW_NAMES.map((n) => `${n}=${CANARY}`).join('&')}&page=2`, `/a?${NEW_NAMES.map((n) => `${n}=REDACTED`).join('&')}&page=2`],
  [`/a?page=1;token=${CANARY};b=2`, '/a?page=1;token=REDACTED;b=2'],
  [`/cart;jsessionid=${CANARY}/items;v=1?x=1`, '/cart;jsessionid=REDACTED/items;v=1?x=1'],
  [`/login?next=https://bob:${CANARY}@idp.example/&x=1`, '/login?next=https://REDACTED@idp.example/&x=1'],
  [
    `/login?next=${encodeURIComponent(`https://bob:${CANARY}@idp.example/cb?token=${CANARY}&ok=1`)}`,
    `/login?next=${encodeURIComponent('https://REDACTED@idp.example/cb?token=REDACTED&ok=1')}`,
  ],
  [`/login?next=/cb?token=${CANARY}`, '/login?next=/cb?token=REDACTED'],
];

/** Asserts that no span holds the canary, and counts them for docs/RELIABILITY.md. */
function assertClean(spans: JaegerSpan[], client: string, placements: string): void {
  for (const s of spans) assert.deepStrictEqual(findSecret(s), [], `${s.operationName}: ${findSecret(s).join(', ')}`);
  record(`secrets.canary.echoed.${client}`, {
    area: 'Secrets',
    what: `${client}: the canary as ${placements}`,
    unit: 'spans scanned',
    lostMeans: 'the canary in an operation name, a tag value or a log field (error objects as the tracer serializes them)',
    tried: spans.length,
    lost: 0,
  });
}

describe('secrets echoed or hidden in URLs stay out of spans', () => {
  it('redactUrl and redactPath', () => {
    for (const [path, redacted] of URLS) {
      assert.strictEqual(redactPath(path), redacted);
      assert.strictEqual(redactUrl(`http://h${path}#frag`), `http://h${redacted}`);
    }
  });

  describe('through http, fetch and undici', () => {
    const t = useTracing(['http', 'fetch']);
    let server: TestServer;
    before(async () => (server = await startHttpServer()));
    after(() => server.close());

    it('every URL form, every client', async () => {
      const parent = t.tracer.startSpan('parent');
      await spanInContext(parent, async () => {
        for (const [path] of URLS) {
          await request(`${server.origin}${path}`);
          await (await fetch(`${server.origin}${path}`)).text();
          await (await undici.request(`${server.origin}${path}`)).body.text();
        }
      });
      parent.finish();
      const spans = t.spans().filter((s) => s.operationName !== 'parent');
      assert.strictEqual(spans.length, URLS.length * 3);
      assertClean(spans, 'http, fetch, undici', 'the value of 14 more secret query names, a `;`-separated pair, a path parameter, the credentials and secrets of a URL-valued parameter (raw and percent-encoded)');
    });
  });
});

describe('secrets echoed by PostgreSQL and Redis stay out of spans', () => {
  const t = useTracing(['pg', 'ioredis']);

  it('pg: SQL literals, and parameter values echoed in errors (array, JSON, Buffer, plpgsql RAISE)', async () => {
    const client = new pg.Client(PG);
    await client.connect();
    const fails = (text: string, values?: unknown[]): Promise<unknown> => client.query(text, values).then(() => assert.fail(text), (e: Error) => e);
    try {
      await client.query(`SELECT 1 WHERE 'x' <> '${CANARY}'`);
      await client.query(`SELECT 1 WHERE 'x' <> $tag$${CANARY}$tag$ -- ${CANARY}`);
      await fails('SELECT 1 WHERE 1 = ANY($1::int[])', [['1', CANARY]]);
      await fails('SELECT $1::int', [{ token: CANARY }]);
      await fails('SELECT $1::json', [`{"token": ${CANARY}}`]);
      await fails('SELECT $1::jsonb', [`${CANARY}`]);
      await fails('SELECT $1::int', [Buffer.from(CANARY)]);
      await client.query(`CREATE FUNCTION pg_temp.ot_raise(t text) RETURNS void AS $$ BEGIN RAISE EXCEPTION 'token %', t; END $$ LANGUAGE plpgsql`);
      await fails('SELECT pg_temp.ot_raise($1)', [CANARY]);
    } finally {
      await client.end();
    }
    const spans = t.spans().filter((s) => tag(s, 'component') === 'pg');
    assert.strictEqual(spans.filter((s) => tag(s, 'error') === true).length, 6);
    assertClean(spans, 'pg', 'SQL string literals, a dollar-quoted body and a comment in the statement, parameter values PostgreSQL echoes in errors (array elements, JSON, a Buffer, a plpgsql RAISE)');
  });

  it('ioredis: a script error_reply, an ACL rule, an unknown subcommand', async () => {
    const redis = new Redis(REDIS);
    const user = uniqueName('ot_acl');
    const fails = (p: Promise<unknown>): Promise<unknown> => p.then(() => assert.fail('expected an error reply'), (e: Error) => e);
    try {
      const err = (await fails(redis.eval('return redis.error_reply(ARGV[1])', 0, `token ${CANARY}`))) as Error;
      assert.ok(err.message.includes(CANARY), 'the app still gets the message as Redis wrote it');
      await fails(redis.call('ACL', 'SETUSER', user, 'on', `#${CANARY}`));
      await fails(redis.call('CONFIG', `x:${CANARY}`));
      await fails(redis.call('OBJECT', `x:${CANARY}`, 'k'));
    } finally {
      await redis.call('ACL', 'DELUSER', user).catch(() => undefined);
      redis.disconnect();
    }
    const spans = t.spans().filter((s) => tag(s, 'component') === 'ioredis');
    assert.ok(spans.filter((s) => tag(s, 'error') === true).length >= 4);
    assertClean(spans, 'ioredis', "arguments Redis echoes in reply errors (a script's error_reply, an ACL SETUSER rule, unknown subcommands)");
  });
});
