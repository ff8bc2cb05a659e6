/**
 * Differential scenarios for axios (both Node adapters): resolved and
 * rejected calls in promise form, interceptors, redirects, timeouts,
 * cancellations and the arguments axios or Node refuse.
 */
import * as http from 'http';
import axios, { type AxiosError, type AxiosResponse, type AxiosRequestConfig } from 'axios';
import { microtaskClock, type Recorder, type Scenario } from '../helpers/differential';
import type { ScenarioEnv } from './env';

/** What an application reads from an axios response (the config's headers show whether anything was added). */
export function axiosResponseView(res: AxiosResponse): unknown {
  return {
    status: res.status,
    statusText: res.statusText,
    data: res.data,
    type: res.headers['content-type'],
    configHeaders: Object.keys(res.config.headers ?? {}).sort(),
    requestIsClientRequest: res.request instanceof http.ClientRequest,
  };
}

/** What an application reads from an axios rejection, beyond the error itself. */
function recordAxiosError(rec: Recorder, err: unknown): void {
  rec.error('rejected', err);
  const e = err as AxiosError;
  if (e && typeof e === 'object' && e.config) {
    rec.event('error details', {
      configHeaders: Object.keys(e.config.headers ?? {}).sort(),
      response: e.response ? { status: e.response.status, data: e.response.data } : undefined,
      isAxiosError: axios.isAxiosError(e),
      isCancel: axios.isCancel(e),
    });
  }
}

async function call(rec: Recorder, promise: () => Promise<AxiosResponse>): Promise<void> {
  let p: Promise<AxiosResponse>;
  try {
    p = promise();
  } catch (err) {
    rec.error('threw', err);
    return;
  }
  rec.event('returned', { isPromise: p instanceof Promise });
  const ticks = microtaskClock();
  await p.then(
    (res) => rec.event('resolved', { ticks: ticks(), response: axiosResponseView(res) }),
    (err: unknown) => {
      rec.event('rejected after', { ticks: ticks() });
      recordAxiosError(rec, err);
    },
  );
}

export function axiosScenarios(env: ScenarioEnv, adapter: 'http' | 'fetch'): Scenario[] {
  const base = (): AxiosRequestConfig => ({ adapter });
  const origin = (): string => env.http.origin;
  const scenarios: Scenario[] = [
    {
      name: 'GET 200',
      run: (rec) => call(rec, () => axios.get(`${origin()}/ok?x=1`, base())),
    },
    {
      name: 'POST JSON through axios(config)',
      run: (rec) => call(rec, () => axios({ ...base(), method: 'post', url: `${origin()}/post`, data: { a: 1 }, headers: { 'x-app': '1' } })),
    },
    {
      name: 'instance with baseURL, params and interceptors (their order)',
      async run(rec) {
        const instance = axios.create({ ...base(), baseURL: origin(), params: { p: 1 } });
        instance.interceptors.request.use((config) => {
          rec.event('request interceptor', { url: config.url });
          config.headers.set('x-intercepted', '1');
          return config;
        });
        instance.interceptors.response.use(
          (res) => {
            rec.event('response interceptor', res.status);
            return res;
          },
          (err: AxiosError) => {
            rec.event('response error interceptor', err.code);
            return Promise.reject(err);
          },
        );
        await call(rec, () => instance.get('/instance', { params: { q: 'two' } }));
      },
    },
    {
      name: 'redirects followed',
      run: (rec) => call(rec, () => axios.get(`${origin()}/redirect/2`, base())),
    },
    {
      name: 'error reply: 500 rejects',
      run: (rec) => call(rec, () => axios.get(`${origin()}/status/500`, base())),
    },
    {
      name: 'error reply: 404 rejects',
      run: (rec) => call(rec, () => axios.get(`${origin()}/status/404`, base())),
    },
    {
      name: 'error reply: 503 resolved by validateStatus',
      run: (rec) => call(rec, () => axios.get(`${origin()}/status/503`, { ...base(), validateStatus: () => true })),
    },
    {
      name: 'network error: connection refused',
      run: (rec) => call(rec, () => axios.get(`http://127.0.0.1:${env.closedPort}/`, base())),
    },
    {
      name: 'network error: the server destroys the socket',
      run: (rec) => call(rec, () => axios.get(`${origin()}/destroy`, base())),
    },
    {
      name: 'network error: the response is cut mid-body',
      run: (rec) => call(rec, () => axios.get(`${origin()}/partial`, base())),
    },
    {
      name: 'timeout option',
      run: (rec) => call(rec, () => axios.get(`${origin()}/slow/3000`, { ...base(), timeout: 40 })),
    },
    {
      name: 'abort: AbortSignal aborted while waiting',
      async run(rec) {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 30);
        await call(rec, () => axios.get(`${origin()}/slow/3000`, { ...base(), signal: ac.signal }));
      },
    },
    {
      name: 'abort: CancelToken cancelled while waiting',
      async run(rec) {
        const source = axios.CancelToken.source();
        setTimeout(() => source.cancel('the app changed its mind'), 30);
        await call(rec, () => axios.get(`${origin()}/slow/3000`, { ...base(), cancelToken: source.token }));
      },
    },
    {
      name: 'abort: a signal aborted before the call (nothing sent)',
      spans: 0,
      async run(rec) {
        const ac = new AbortController();
        ac.abort();
        await call(rec, () => axios.get(`${origin()}/never`, { ...base(), signal: ac.signal }));
      },
    },
    {
      name: 'a request interceptor that throws (nothing sent)',
      spans: 0,
      async run(rec) {
        const instance = axios.create(base());
        instance.interceptors.request.use(() => {
          throw new Error('interceptor refused');
        });
        await call(rec, () => instance.get(`${origin()}/never`));
      },
    },
    {
      name: 'responseType stream, read to its end',
      async run(rec) {
        let res: AxiosResponse<NodeJS.ReadableStream> | undefined;
        try {
          res = await axios.get<NodeJS.ReadableStream>(`${origin()}/stream`, { ...base(), responseType: 'stream' });
        } catch (err) {
          recordAxiosError(rec, err);
          return;
        }
        rec.event('response', { status: res.status, readable: typeof res.data.on === 'function' });
        let body = '';
        for await (const chunk of res.data as AsyncIterable<Buffer | string>) body += chunk.toString();
        rec.event('body', body);
      },
    },
    {
      name: 'invalid argument: not a URL',
      run: (rec) => call(rec, () => axios.get('http://exa mple.com/', base())),
    },
    {
      name: 'invalid argument: a header value with a newline',
      run: (rec) => call(rec, () => axios.get(`${origin()}/`, { ...base(), headers: { 'x-bad': 'a\nb' } })),
    },
    {
      name: 'invalid argument: a method that is not a token',
      run: (rec) => call(rec, () => axios.request({ ...base(), url: `${origin()}/`, method: 'GE T' })),
    },
  ];
  return scenarios.map((s) => ({ ...s, name: `axios (${adapter} adapter): ${s.name}` }));
}
