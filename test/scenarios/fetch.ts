/**
 * Differential scenarios for fetch: Node's global fetch and the `undici`
 * package (its fetch and request), through every way a request ends: body
 * read, error status, refused, reset, cut body, timeout, abort, body
 * cancelled, redirects, and the arguments fetch refuses.
 */
import * as undici from 'undici';
import type { Recorder, Scenario } from '../helpers/differential';
import type { ScenarioEnv } from './env';

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

async function fetchCall(rec: Recorder, make: () => Promise<Response>, read: 'text' | 'cancel' | 'none' = 'text'): Promise<void> {
  let p: Promise<Response>;
  try {
    p = make();
  } catch (err) {
    rec.error('threw', err);
    return;
  }
  rec.event('returned', { isPromise: p instanceof Promise });
  const res = await rec.settle('fetch', p, () => 'a Response');
  if (res === undefined) return;
  rec.event('response', {
    status: res.status,
    statusText: res.statusText,
    ok: res.ok,
    redirected: res.redirected,
    type: res.headers.get('content-type'),
    headerNames: [...res.headers.keys()].filter((k) => k !== 'date').sort(),
  });
  if (read === 'cancel') {
    await rec.settle('body.cancel', res.body?.cancel() ?? Promise.resolve());
  } else if (read === 'text') {
    await rec.settle('text', res.text(), (text) => text);
  }
}

export function fetchScenarios(env: ScenarioEnv, which: 'global fetch' | 'undici.fetch'): Scenario[] {
  // Looked up at each call, as an application does: the wrapped fetch when instrumentation is on.
  const f: FetchLike = (input, init) => (which === 'global fetch' ? globalThis.fetch(input, init) : (undici.fetch as unknown as FetchLike)(input, init));
  // Taken before any install (a module that kept a reference early): only the diagnostics channels see its requests.
  const early: FetchLike = which === 'global fetch' ? fetch : (undici.fetch as unknown as FetchLike);
  const origin = (): string => env.http.origin;
  const scenarios: Scenario[] = [
    {
      name: 'GET 200, body read',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/ok?x=1`)),
    },
    {
      name: 'POST with a Headers object (not mutated) and a body',
      async run(rec) {
        const headers = new Headers({ 'content-type': 'application/json', 'x-app': '1' });
        await fetchCall(rec, () => f(`${origin()}/post`, { method: 'POST', headers, body: JSON.stringify({ a: 1 }) }));
        rec.event('caller headers after the call', [...headers.keys()].sort());
      },
    },
    {
      name: 'POST with a plain headers object (not mutated)',
      async run(rec) {
        const headers: Record<string, string> = { 'x-app': '1' };
        await fetchCall(rec, () => f(`${origin()}/post`, { method: 'POST', headers, body: 'text' }));
        rec.event('caller headers after the call', Object.keys(headers).sort());
      },
    },
    {
      name: 'redirects followed (one span for the call)',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/redirect/2`)),
    },
    {
      name: 'redirects followed by a fetch taken before install (one span per hop)',
      spans: 3,
      run: (rec) => fetchCall(rec, () => early(`${origin()}/redirect/2`)),
    },
    {
      name: 'more redirects than fetch follows',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/redirect/21`)),
    },
    {
      name: "redirect: 'error'",
      run: (rec) => fetchCall(rec, () => f(`${origin()}/redirect/1`, { redirect: 'error' })),
    },
    {
      name: 'redirect: manual',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/redirect/1`, { redirect: 'manual' })),
    },
    {
      name: 'error reply: 500 resolves',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/status/500`)),
    },
    {
      name: 'error reply: 404, body never read',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/status/404`), 'none'),
    },
    {
      name: 'body cancelled after the headers',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/ok`), 'cancel'),
    },
    {
      name: 'network error: connection refused',
      run: (rec) => fetchCall(rec, () => f(`http://127.0.0.1:${env.closedPort}/`)),
    },
    {
      name: 'network error: the server destroys the socket',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/destroy`)),
    },
    {
      name: 'network error: the response is cut mid-body',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/partial`)),
    },
    {
      name: 'timeout: AbortSignal.timeout',
      run: (rec) => fetchCall(rec, () => f(`${origin()}/slow/3000`, { signal: AbortSignal.timeout(40) })),
    },
    {
      name: 'abort: AbortController aborted while waiting',
      async run(rec) {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 30);
        await fetchCall(rec, () => f(`${origin()}/slow/3000`, { signal: ac.signal }));
      },
    },
    {
      name: 'abort: a signal aborted before the call (nothing sent)',
      spans: 0,
      async run(rec) {
        const ac = new AbortController();
        ac.abort(new Error('the app aborted first'));
        await fetchCall(rec, () => f(`${origin()}/never`, { signal: ac.signal }));
      },
    },
    {
      name: 'invalid argument: not a URL',
      spans: 0,
      run: (rec) => fetchCall(rec, () => f('not a url')),
    },
    {
      name: 'invalid argument: a header value with a newline',
      spans: 0,
      run: (rec) => fetchCall(rec, () => f(`${origin()}/`, { headers: { 'x-bad': 'a\nb' } })),
    },
    {
      name: 'invalid argument: a method that is not a token',
      spans: 0,
      run: (rec) => fetchCall(rec, () => f(`${origin()}/`, { method: 'GE T' })),
    },
    {
      name: 'invalid argument: a body with GET',
      spans: 0,
      run: (rec) => fetchCall(rec, () => f(`${origin()}/`, { method: 'GET', body: 'x' })),
    },
  ];
  if (which === 'undici.fetch') {
    scenarios.push(
      {
        name: 'undici.request: 200, body read',
        async run(rec) {
          const res = await rec.settle('request', undici.request(`${origin()}/ok`), (r) => r.statusCode);
          if (res) await rec.settle('body.text', res.body.text(), (t) => t);
        },
      },
      {
        name: 'undici.request: connection refused',
        async run(rec) {
          await rec.settle('request', undici.request(`http://127.0.0.1:${env.closedPort}/`), (r) => r.statusCode);
        },
      },
      {
        name: 'undici.request: headersTimeout',
        async run(rec) {
          await rec.settle('request', undici.request(`${origin()}/slow/3000`, { headersTimeout: 40 }), (r) => r.statusCode);
        },
      },
    );
  }
  return scenarios.map((s) => ({ ...s, name: `${which}: ${s.name}` }));
}
