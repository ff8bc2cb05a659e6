/**
 * Keeps the I/O of any jaeger-client tracer out of the traces, including a
 * tracer the application builds itself with `require('jaeger-client').initTracer`.
 *
 * Without it, each flush of jaeger-client's HTTP sender (`POST /api/traces`)
 * becomes a client span under the patched `http`, reported in the next flush,
 * which is traced again: one junk trace per flush interval, forever; and
 * every poll of the remote sampler and throttler (`GET /sampling`,
 * `GET /credits`) becomes a trace of its own.
 *
 * The functions through which jaeger-client 3.x does that I/O run under
 * `suppressInstrumentation`:
 * - `HTTPSender.prototype.flush` and `UDPSender.prototype.flush`
 *   (dist/src/reporters/http_sender.js, udp_sender.js): every send of spans;
 *   `append` calls `this.flush` when a batch is full, so it is covered too;
 * - the static `Utils.httpGet` (dist/src/util.js), called at each poll by
 *   `RemoteSampler._refreshSamplingStrategy` (samplers/remote_sampler.js) and
 *   `RemoteThrottler._fetchCredits` (throttler/remote_throttler.js). Patching
 *   the static rather than those methods also covers samplers built before
 *   the guard: their timers hold `bind`ings of the original methods, which
 *   look `httpGet` up at each call.
 *
 * Every copy of jaeger-client loaded in the process is guarded (found in
 * `require.cache`), once; `guardLoadedJaegerClients` is called when patches
 * are installed and each time `jaeger-client` is required later. The guard
 * is never removed: jaeger's own traffic is not the application's, whether
 * patches are installed or not.
 */
import * as path from 'path';
import { suppressInstrumentation } from '../context';
import { logOnce } from '../logger';

const GUARDED = Symbol.for('opentracing-instrumentation.jaeger-guard');

/** The files of jaeger-client 3.x whose exports are guarded, and what in them. */
const TARGETS: ReadonlyArray<{ file: string; prototype?: string; statics?: string }> = [
  { file: ['reporters', 'http_sender.js'].join(path.sep), prototype: 'flush' },
  { file: ['reporters', 'udp_sender.js'].join(path.sep), prototype: 'flush' },
  { file: 'util.js', statics: 'httpGet' },
];
const DIST = `${path.sep}jaeger-client${path.sep}dist${path.sep}src${path.sep}`;

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** Replaces `owner[key]` by a function that runs the original under suppressInstrumentation. */
function guard(owner: Record<string, unknown> | undefined, key: string): void {
  if (!owner || (typeof owner !== 'object' && typeof owner !== 'function')) return;
  const original = owner[key];
  if (typeof original !== 'function' || (original as unknown as Record<symbol, unknown>)[GUARDED]) return;
  const fn = original as Fn;
  const guarded = function (this: unknown) {
    // eslint-disable-next-line prefer-rest-params
    const args = arguments;
    return suppressInstrumentation(() => fn.apply(this, args as unknown as unknown[]));
  };
  Object.defineProperty(guarded, 'name', { value: fn.name, configurable: true });
  Object.defineProperty(guarded, 'length', { value: fn.length, configurable: true });
  Object.defineProperty(guarded, GUARDED, { value: true });
  owner[key] = guarded;
}

/** Guards every copy of jaeger-client that is loaded now. Never throws. */
export function guardLoadedJaegerClients(): void {
  try {
    for (const [filename, mod] of Object.entries(require.cache)) {
      const at = filename.lastIndexOf(DIST);
      if (at === -1 || mod === undefined) continue;
      const rest = filename.slice(at + DIST.length);
      const target = TARGETS.find((t) => t.file === rest);
      if (target === undefined) continue;
      const cls = (mod.exports as { default?: unknown } | undefined)?.default;
      if (typeof cls !== 'function') continue;
      if (target.prototype) guard(cls.prototype as Record<string, unknown>, target.prototype);
      if (target.statics) guard(cls as unknown as Record<string, unknown>, target.statics);
    }
  } catch (err) {
    logOnce('jaeger-guard', "could not guard jaeger-client's own traffic; it may be traced", err);
  }
}
