/**
 * Hostile incoming trace context, fuzzed: requests with random, truncated,
 * oversized, non-ASCII and structurally wrong `uber-trace-id`, `uberctx-*`,
 * `jaeger-baggage` and `jaeger-debug-id` headers, from trusted and untrusted
 * callers, to an application under the server patch (a child process, see
 * test/fuzz/server-child.ts). Nothing may crash, no exception may reach the
 * application, the heap must stay flat, untrusted callers must not force
 * sampling or plant baggage, and the baggage forwarded downstream stays
 * within its bounds.
 *
 * `FUZZ_REQUESTS` (default 10000, after 1000 warm-up requests) and
 * `FUZZ_SEED` (default: random, printed on failure) change the run.
 */
import assert from 'assert';
import type { JaegerFuzzStats } from './helpers/fuzz-app';
import { assertNothingLost, fuzzRequests, heapNote, int, MAX_HEAP_GROWTH, mb, pick, prng, REPLAY, REQUESTS, SEED, useFuzzChild, WARM_UP, type Rand } from './helpers/fuzz';
import { record } from './helpers/reliability';

/** Node's default `maxHeaderSize`: a larger header block is answered 431 by Node's parser. */
const NODE_HEADER_LIMIT = 16 * 1024;

const HEX = '0123456789abcdefABCDEF';
/** Every character Node lets a client put in a header value: tab, visible ASCII, space, and bytes 0x80-0xFF. */
const VALUE_CHARS = ['\t', ...Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)), ...Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i))];
const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const NON_ASCII = ['é', '€', '日本語', '🙂', '\u202e', 'Ω', '\ufeff', 'ß'];

/** Non-ASCII text as the UTF-8 bytes a client would send (each byte one latin1 character). */
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

function fromChars(r: Rand, chars: readonly string[] | string, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += chars[Math.floor(r() * chars.length)];
  return s;
}

/** Mostly short, sometimes long. */
function length(r: Rand, max: number): number {
  const x = r();
  if (x < 0.6) return int(r, 0, 16);
  if (x < 0.9) return int(r, 17, 200);
  return int(r, 201, max);
}

const hex = (r: Rand, len: number): string => fromChars(r, HEX, len);
const junk = (r: Rand, max = 2000): string => fromChars(r, VALUE_CHARS, length(r, max)).trim();
const token = (r: Rand, max = 40): string => fromChars(r, TOKEN_CHARS, int(r, 1, max));

function validContext(r: Rand): string {
  return `${hex(r, int(r, 1, 32))}:${hex(r, int(r, 1, 16))}:${r() < 0.5 ? '0' : hex(r, int(r, 1, 16))}:${int(r, 0, 3)}`;
}

const TRACE_ID_FORMS: ReadonlyArray<(r: Rand) => string | string[]> = [
  validContext,
  (r) => validContext(r).slice(0, int(r, 0, 20)), // truncated
  (r) => Array.from({ length: pick(r, [0, 1, 2, 3, 5, 6, 9]) }, () => hex(r, int(r, 0, 20))).join(':'), // wrong segment count
  (r) => `${hex(r, int(r, 33, 4000))}:${hex(r, int(r, 17, 2000))}:0:1`, // oversized ids
  (r) => Array.from({ length: 4 }, () => junk(r, 60)).join(':'), // not hex
  (r) => junk(r, 3000),
  (r) => encodeURIComponent(validContext(r)),
  (r) => pick(r, ['%', '%zz', '%E2%82', '%3A%3A%3A', '%00:%00:0:1', '%0d%0a:1:0:1']) + hex(r, 4),
  (r) => `  ${validContext(r)}\t`,
  (r) => pick(r, ['0:0:0:0', '0:1:0:1', '00000000:1:0:1', '-1:-1:0:1', 'NaN:Infinity:0:1', '0x1f:0x2:0:1', '1e3:1:0:1', 'abc:abc:0:ffffffffffffffff', '__proto__', 'constructor:prototype:0:1', 'undefined', 'null:null:null:null']),
  (r) => utf8(`${pick(r, NON_ASCII)}:${pick(r, NON_ASCII)}:0:1`),
  (r) => [validContext(r), validContext(r)], // sent twice: the server joins them with ', '
  (r) => `${validContext(r)},${validContext(r)}`,
];

const DEBUG_ID_FORMS: ReadonlyArray<(r: Rand) => string> = [
  (r) => token(r, 20),
  (r) => junk(r, 4000),
  (r) => utf8(pick(r, NON_ASCII).repeat(int(r, 1, 50))),
  () => '',
  (r) => `%${hex(r, 2)}%${hex(r, 1)}`,
];

function baggageHeaders(r: Rand, budget: number): string[] {
  const out: string[] = [];
  const n = pick(r, [1, 2, 5, 20, 80, 200]);
  let used = 0;
  for (let i = 0; i < n && used < budget; i++) {
    const name = `uberctx-${r() < 0.15 ? pick(r, ['__proto__', 'constructor', 'hasOwnProperty', 'toString', '', '-', 'UPPER']) : token(r)}`;
    const value = pick(r, [() => token(r, 30), () => junk(r, 4000), () => utf8(pick(r, NON_ASCII)), () => encodeURIComponent(utf8(pick(r, NON_ASCII))), () => '%E2%82%AC%zz', () => ''])();
    used += name.length + value.length;
    if (used > budget) break;
    out.push(name, value);
  }
  return out;
}

function jaegerBaggage(r: Rand): string {
  const items = Array.from({ length: int(r, 1, 30) }, () =>
    pick(r, [
      () => `${token(r, 10)}=${token(r, 10)}`,
      () => `${junk(r, 30)}=${junk(r, 30)}`,
      () => `a b=${token(r, 5)}`,
      () => `k%0d%0aX-Injected: x=${token(r, 5)}`,
      () => `${utf8(pick(r, NON_ASCII))}=${utf8(pick(r, NON_ASCII))}`,
      () => '==',
      () => `__proto__=${token(r, 5)}`,
      () => `=${token(r, 5)}`,
    ])(),
  );
  return items.join(pick(r, [',', ', ', ',,', ' , ']));
}

/** One request's headers, as a raw array (names may repeat). */
function hostileHeaders(r: Rand, host: string): { headers: string[]; trusted: boolean; oversized: boolean } {
  const headers = ['host', host];
  const trusted = r() < 0.5;
  if (trusted) headers.push('x-trusted', 'yes');
  if (r() < 0.85) {
    const v = pick(r, TRACE_ID_FORMS)(r);
    for (const one of Array.isArray(v) ? v : [v]) headers.push(pick(r, ['uber-trace-id', 'Uber-Trace-Id', 'UBER-TRACE-ID']), one);
  }
  if (r() < 0.3) headers.push('jaeger-debug-id', pick(r, DEBUG_ID_FORMS)(r));
  if (r() < 0.3) headers.push('jaeger-baggage', jaegerBaggage(r));
  // About 2% go past Node's 16 KiB header limit: Node answers 431 before any application code.
  const oversized = r() < 0.02;
  if (r() < 0.6 || oversized) headers.push(...baggageHeaders(r, oversized ? 40000 : 11000));
  if (oversized) headers.push('uberctx-pad', 'p'.repeat(17000));
  // Node's limit counts the whole header block: near it, Node may answer 431 whatever the fuzzer meant.
  let size = 0;
  for (let i = 0; i < headers.length; i += 2) size += headers[i].length + headers[i + 1].length + 4;
  return { headers, trusted, oversized: size > NODE_HEADER_LIMIT - 1024 };
}

describe(`hostile trace headers: ${REQUESTS} fuzzed requests to the server patch (seed ${SEED})`, () => {
  const app = useFuzzChild('server-child.ts');

  it('nothing crashes, nothing reaches the app, the heap stays flat, untrusted callers change nothing', async function () {
    this.timeout(300000);
    const r = prng(SEED);
    const host = `127.0.0.1:${app.port}`;
    const fuzzed = await fuzzRequests<JaegerFuzzStats>(app, {
      pathPrefix: '/f/',
      badRequestIsNodes: true,
      next: () => hostileHeaders(r, host),
    });
    const { outcome, stats, ms, growth } = fuzzed;

    assertNothingLost(fuzzed, app.stderr);
    assert.strictEqual(stats.handled, outcome.ok, 'requests answered 200 != requests the handler saw');
    assert.strictEqual(stats.noServerSpan, 0, 'a request without its server span');
    assert.deepStrictEqual(stats.untrustedViolations.slice(0, 5), [], `untrusted callers forced sampling or planted baggage ${REPLAY}`);
    assert.deepStrictEqual(stats.baggageOverBounds.slice(0, 5), [], `baggage beyond the bounds went downstream ${REPLAY}`);
    assert.strictEqual(stats.doubleFinished, 0);
    assert.strictEqual(stats.spansFinished, stats.spansStarted, 'spans left unfinished');
    assert.ok(stats.untrustedForcing > 100 && stats.untrustedBaggage > 100, 'the fuzzer did not try forcing enough');
    assert.ok(growth < MAX_HEAP_GROWTH, `heap grew by ${mb(growth)} over ${REQUESTS} requests ${REPLAY}`);

    const total = WARM_UP + REQUESTS;
    const notes = [
      `seed ${SEED}; ${total} requests in ${ms} ms (${WARM_UP} warm-up); ${outcome.ok} handled, ${outcome.refusedByNode} refused by Node's own parser before any application code (oversized headers, 431)`,
      heapNote(fuzzed),
      `largest baggage forwarded downstream: ${stats.maxDownstreamBaggageItems} entries, ${stats.maxDownstreamBaggageBytes} bytes`,
    ];
    record('hostile.fuzz', {
      area: 'Hostile input',
      what: 'fuzzed `uber-trace-id`, `uberctx-*`, `jaeger-baggage`, `jaeger-debug-id` headers (random, truncated, oversized, non-ASCII, structurally wrong) to the server patch, each request making a downstream call',
      unit: 'requests',
      lostMeans: 'a crash, an exception reaching the process or the handler, a failed request or downstream call, a span unfinished or finished twice',
      tried: total,
      lost: outcome.lost.length + stats.uncaught.length + stats.handlerExceptions + stats.downstreamErrors.length + (stats.spansStarted - stats.spansFinished) + stats.doubleFinished,
      notes,
    });
    record('hostile.heap', {
      area: 'Hostile input',
      what: `heap of the fuzzed application after full GCs, before and after ${REQUESTS} requests`,
      unit: 'requests',
      lostMeans: `heap growth of ${mb(MAX_HEAP_GROWTH)} or more`,
      tried: REQUESTS,
      lost: growth < MAX_HEAP_GROWTH ? 0 : 1,
      notes: [`${growth >= 0 ? '+' : ''}${mb(growth)} (${mb(stats.heapBaseline)} → ${mb(stats.heapEnd)})`],
    });
    record('hostile.untrusted', {
      area: 'Hostile input',
      what: 'untrusted callers (trust predicate says no) sending a sampled flag or `jaeger-debug-id`, and baggage, in the same fuzz run',
      unit: 'untrusted requests',
      lostMeans: 'a sampled or debug server span, a sampled downstream call, baggage downstream, or the caller\'s trace continued',
      tried: stats.untrusted,
      lost: stats.untrustedViolations.length,
      notes: [`${stats.untrustedForcing} tried to force sampling, ${stats.untrustedBaggage} sent baggage`],
    });
    record('hostile.baggage-bounds', {
      area: 'Hostile input',
      what: 'baggage forwarded downstream by trusted fuzzed requests',
      unit: 'downstream requests',
      lostMeans: 'an application request failing because of forwarded baggage, or baggage forwarded beyond the bounds',
      tried: stats.trusted,
      lost: stats.baggageOverBounds.length,
    });
  });
});
