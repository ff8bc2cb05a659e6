/**
 * The calls each "request" of the load test makes, one per client library.
 * Each call carries its request number where the span shows it (URL path,
 * SQL comment, Redis key), so that a span can be traced back to the request
 * that made it.
 */
import type { AxiosInstance } from 'axios';
import type * as http from 'http';
import type * as undici from 'undici';
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
  return calls;
}
