/**
 * The calls each "request" of the load test makes, one per client library.
 * Each call carries its request number where the span shows it (URL path,
 * SQL comment, Redis key), so that a span can be traced back to the request
 * that made it.
 */
import type { AxiosInstance } from 'axios';
import type * as http from 'http';
import Redis from 'ioredis';
import pg from 'pg';
import type * as undici from 'undici';
import { PG, REDIS, uniqueName } from '../helpers/db';
import { TAG } from '../../src/constants';
import { tag, type JaegerSpan } from '../helpers/tracing';

export interface LoadResources {
  origin: string;
  httpAgent: http.Agent;
  undiciAgent: undici.Agent;
  axios: AxiosInstance;
}

export interface LoadCall {
  name: string;
  /** The `component` tag of its spans. */
  component: string;
  /** Client spans one call makes. */
  spansPerCall: number;
  /** True when the call reaches the test's http server (which checks the trace header). */
  viaServer: boolean;
  run(request: number, round: string): Promise<void>;
  /** The request number a span of this call belongs to. */
  requestOf(span: JaegerSpan): number | undefined;
  close?(): Promise<void>;
}

function numberIn(text: unknown, pattern: RegExp): number | undefined {
  const m = typeof text === 'string' ? pattern.exec(text) : null;
  return m ? Number(m[1]) : undefined;
}

const fromUrl = (span: JaegerSpan): number | undefined => numberIn(tag(span, TAG.HTTP_URL), /\/load\/(\d+)\//);

export async function loadCalls(r: LoadResources): Promise<LoadCall[]> {
  // Required here, after the patches are installed (as an application would).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const httpModule = require('http') as typeof http;
  const calls: LoadCall[] = [
    {
      name: 'http',
      component: 'http',
      spansPerCall: 1,
      viaServer: true,
      run: (i, round) =>
        new Promise<void>((resolve, reject) => {
          httpModule
            .get(`${r.origin}/load/${i}/http-${round}`, { agent: r.httpAgent }, (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => (JSON.parse(body).path === `/load/${i}/http-${round}` ? resolve() : reject(new Error(`wrong body ${body}`))));
              res.on('error', reject);
            })
            .on('error', reject);
        }),
      requestOf: fromUrl,
    },
    {
      name: 'axios',
      component: 'axios',
      spansPerCall: 1,
      viaServer: true,
      async run(i, round) {
        const res = await r.axios.get<{ path: string }>(`${r.origin}/load/${i}/axios-${round}`);
        if (res.data.path !== `/load/${i}/axios-${round}`) throw new Error(`wrong body ${JSON.stringify(res.data)}`);
      },
      requestOf: fromUrl,
    },
    {
      name: 'fetch',
      component: 'fetch',
      spansPerCall: 1,
      viaServer: true,
      async run(i, round) {
        const res = await fetch(`${r.origin}/load/${i}/fetch-${round}`, { dispatcher: r.undiciAgent } as unknown as RequestInit);
        const body = (await res.json()) as { path: string };
        if (body.path !== `/load/${i}/fetch-${round}`) throw new Error(`wrong body ${JSON.stringify(body)}`);
      },
      requestOf: fromUrl,
    },
  ];

  // PostgreSQL: one pool of 8 for every request (the others wait for a free client, in their own context).
  const pool = new pg.Pool({ ...PG, max: 8 });
  calls.push({
    name: 'pg',
    component: 'pg',
    spansPerCall: 1,
    viaServer: false,
    async run(i, round) {
      // The request number travels in a column name, which db.statement keeps (literals and comments are masked).
      const res = await pool.query(`SELECT $1::int AS i, true AS load_${i}_${round}`, [i]);
      if (res.rows[0].i !== i) throw new Error(`wrong row ${JSON.stringify(res.rows)}`);
    },
    requestOf: (span) => numberIn(tag(span, TAG.DB_STATEMENT), /\bload_(\d+)_/),
    close: () => pool.end(),
  });

  // Redis: one connection for every request; keys are removed at the end.
  const redis = new Redis(REDIS);
  const prefix = uniqueName('safety_load');
  calls.push({
    name: 'ioredis',
    component: 'ioredis',
    spansPerCall: 1,
    viaServer: false,
    async run(i, round) {
      const reply = await redis.set(`${prefix}:${i}:${round}`, String(i), 'EX', 120);
      if (reply !== 'OK') throw new Error(`SET answered ${String(reply)}`);
    },
    requestOf: (span) => numberIn(tag(span, TAG.DB_STATEMENT), new RegExp(`${prefix}:(\\d+):`)),
    async close() {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
      await redis.quit();
    },
  });
  return calls;
}
