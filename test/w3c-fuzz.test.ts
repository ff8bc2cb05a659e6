/**
 * Hostile W3C trace context, fuzzed: 10,000 requests (after 1,000 warm-up
 * ones) with malformed `traceparent` (wrong version, lengths, all-zero ids,
 * upper case, version ff, junk, several headers), `tracestate` (invalid keys
 * and values, too many or too long members, duplicates) and `baggage` (bad
 * percent-encoding, too many entries, junk) headers, from trusted and
 * untrusted callers, to an application under the server patch with W3C
 * propagation on (test/fuzz/w3c-server-child.ts). Nothing may crash, the heap
 * must stay flat, untrusted callers change nothing, and what goes downstream
 * is well formed and bounded.
 *
 * `FUZZ_REQUESTS` (default 10000) and `FUZZ_SEED` (default random) change the run.
 */
import assert from 'assert';
import type * as http from 'http';
import type { W3CFuzzStats } from './helpers/fuzz-app';
import { assertNothingLost, fuzzRequests, heapNote, int, MAX_HEAP_GROWTH, mb, pick, prng, REPLAY, REQUESTS, SEED, useFuzzChild, WARM_UP, type Rand } from './helpers/fuzz';
import { record } from './helpers/reliability';

const LOWER_HEX = '0123456789abcdef';
/** What a client may put in a header value: tab, visible ASCII, space, bytes 0x80-0xFF. */
const VALUE_CHARS = ['\t', ...Array.from({ length: 0x5f }, (_, i) => String.fromCharCode(0x20 + i)), ...Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i))];
const chars = (r: Rand, set: readonly string[] | string, n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += set[Math.floor(r() * set.length)];
  return s;
};
const hex = (r: Rand, n: number): string => chars(r, LOWER_HEX, n);
const junk = (r: Rand, max: number): string => chars(r, VALUE_CHARS, int(r, 0, max)).trim();

const validParent = (r: Rand): string => `00-${hex(r, 32)}-${hex(r, 16)}-${pick(r, ['00', '01'])}`;

/** Malformed `traceparent` values (and, one time in ten, a valid one). */
const TRACEPARENT_FORMS: ReadonlyArray<(r: Rand) => string | string[]> = [
  validParent,
  (r) => validParent(r).toUpperCase(),
  (r) => {
    const v = validParent(r);
    const i = int(r, 3, v.length - 1);
    return v[i] === '-' ? v : v.slice(0, i) + chars(r, 'ABCDEF', 1) + v.slice(i + 1); // one upper-case digit
  },
  (r) => `ff-${hex(r, 32)}-${hex(r, 16)}-01`,
  (r) => `00-${'0'.repeat(32)}-${hex(r, 16)}-01`,
  (r) => `00-${hex(r, 32)}-${'0'.repeat(16)}-01`,
  (r) => `00-${hex(r, int(r, 0, 40))}-${hex(r, int(r, 0, 20))}-${hex(r, int(r, 0, 3))}`, // wrong lengths
  (r) => `${hex(r, int(r, 0, 3))}-${hex(r, 32)}-${hex(r, 16)}-01`, // wrong version length
  (r) => `00-${hex(r, 32)}-${hex(r, 16)}-01-${junk(r, 40)}`, // version 00 with more fields
  (r) => `00-${hex(r, 32)}-${hex(r, 16)}-01${junk(r, 10)}`,
  (r) => `${pick(r, ['01', 'cc', 'fe'])}-${hex(r, 32)}-${hex(r, 16)}-${hex(r, 2)}${r() < 0.5 ? `-${junk(r, 60)}` : junk(r, 5)}`, // later versions
  (r) => validParent(r).slice(0, int(r, 0, 54)), // truncated
  (r) => validParent(r).replace(/-/g, () => pick(r, ['_', ' ', '', '--', ':'])),
  (r) => [validParent(r), validParent(r)], // two headers
  (r) => `${validParent(r)},${validParent(r)}`,
  (r) => junk(r, 300),
  (r) => `00-${hex(r, 32)}-${hex(r, 16)}-${junk(r, 2)}`,
];

const KEY_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/@ABC=,; ';
function tracestate(r: Rand): string {
  const n = pick(r, [0, 1, 2, 5, 31, 32, 33, 100]);
  const members: string[] = [];
  for (let i = 0; i < n; i++) {
    const form = int(r, 0, 5);
    if (form === 0) members.push(`${chars(r, 'abcdefghijklmnopqrstuvwxyz', int(r, 1, 8))}=${junk(r, 20).replace(/[,=]/g, 'x') || 'v'}`);
    else if (form === 1) members.push(`${chars(r, KEY_CHARS, int(r, 0, 20))}=${junk(r, 30)}`);
    else if (form === 2) members.push(`t@${chars(r, 'abc', int(r, 0, 20))}=${hex(r, int(r, 0, 300))}`); // long values, long system ids
    else if (form === 3) members.push(`dup=${hex(r, 4)}`);
    else if (form === 4) members.push(junk(r, 50));
    else members.push(`k${i}=${'v'.repeat(int(r, 100, 256))}`);
  }
  return members.join(pick(r, [',', ', ', ' , ', ',,']));
}

function baggage(r: Rand): string {
  const n = pick(r, [0, 1, 3, 64, 65, 200]);
  const entries: string[] = [];
  for (let i = 0; i < n; i++) {
    const form = int(r, 0, 4);
    if (form === 0) entries.push(`k${i}=${encodeURIComponent(junk(r, 30))}`);
    else if (form === 1) entries.push(`k${i}=%${pick(r, ['', 'E0%A4%A', 'ZZ', 'C3', 'FF'])}`); // bad percent-encoding
    else if (form === 2) entries.push(`${junk(r, 10)}=${junk(r, 10)};prop=${junk(r, 5)}`);
    else if (form === 3) entries.push(`big${i}=${'x'.repeat(int(r, 100, 3000))}`);
    else entries.push(junk(r, 40));
  }
  return entries.join(pick(r, [',', ' , ']));
}

interface Hostile {
  headers: http.OutgoingHttpHeaders;
}

function hostile(r: Rand): Hostile {
  const headers: http.OutgoingHttpHeaders = {};
  if (r() < 0.9) headers.traceparent = pick(r, TRACEPARENT_FORMS)(r);
  if (r() < 0.6) headers.tracestate = tracestate(r);
  if (r() < 0.6) headers.baggage = baggage(r);
  if (r() < 0.2) headers['uber-trace-id'] = `${hex(r, int(r, 1, 32))}:${hex(r, int(r, 1, 16))}:0:${int(r, 0, 3)}`;
  if (r() < 0.1) headers['jaeger-debug-id'] = junk(r, 20) || 'x';
  if (r() < 0.5) headers['x-trusted'] = 'yes';
  // Keep under Node's 16 KB header limit: a larger block is refused by Node's parser, before any of our code.
  for (const name of ['baggage', 'tracestate'] as const) {
    const v = headers[name];
    if (typeof v === 'string' && v.length > 6000) headers[name] = v.slice(0, 6000);
  }
  return { headers };
}

describe(`hostile W3C trace context: ${REQUESTS} fuzzed requests to the server patch (seed ${SEED})`, () => {
  const app = useFuzzChild('w3c-server-child.ts');

  it('0 crashes, heap flat, untrusted callers change nothing, downstream headers well formed and bounded', async function () {
    this.timeout(300000);
    const r = prng(SEED);
    const fuzzed = await fuzzRequests<W3CFuzzStats>(app, { pathPrefix: '/w/', next: () => hostile(r) });
    const { stats, growth } = fuzzed;
    const { lost, ok } = fuzzed.outcome;
    const notes = [
      `seed ${SEED}; ${WARM_UP + REQUESTS} requests (${WARM_UP} warm-up), ${ok} answered 200`,
      heapNote(fuzzed),
      `${stats.continued} of ${stats.validParents} valid traceparents from trusted callers continued; ${stats.untrustedForcing} untrusted attempts to force sampling, ${stats.untrustedBaggage} to plant baggage, none taken`,
    ];
    record('hostile.w3c', {
      area: 'Hostile input',
      what: 'fuzzed W3C `traceparent` (wrong version, lengths, all-zero ids, upper case, `ff`, several headers), `tracestate` and `baggage` headers to the server patch with W3C propagation on, each request making a downstream call',
      unit: 'requests',
      lostMeans: 'a crash, an exception reaching the process or the handler, a failed request or downstream call, a malformed or unbounded header sent downstream, an untrusted caller forcing sampling or planting baggage',
      tried: WARM_UP + REQUESTS,
      lost: lost.length + stats.uncaught.length + stats.handlerExceptions + stats.downstreamErrors.length + stats.badDownstream.length + stats.untrustedViolations.length,
      notes,
    });

    assertNothingLost(fuzzed, app.stderr);
    assert.strictEqual(stats.handled, WARM_UP + REQUESTS);
    assert.strictEqual(stats.noServerSpan, 0, 'a request without its server span');
    assert.deepStrictEqual(stats.untrustedViolations.slice(0, 5), [], `untrusted callers forced sampling or planted baggage ${REPLAY}`);
    assert.deepStrictEqual(stats.badDownstream.slice(0, 5), [], `malformed or unbounded headers went downstream ${REPLAY}`);
    assert.ok(stats.validParents > 100, 'the fuzzer sent too few valid traceparents to check continuation');
    assert.strictEqual(stats.continued, stats.validParents, 'a trusted, valid traceparent was not continued');
    assert.ok(stats.untrustedForcing > 100 && stats.untrustedBaggage > 100, 'the fuzzer did not try forcing enough');
    assert.ok(growth < MAX_HEAP_GROWTH, `heap grew by ${mb(growth)} over ${REQUESTS} requests ${REPLAY}`);
  });
});
