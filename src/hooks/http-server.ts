/**
 * Server spans for Node's `http` and `https` servers: every `request` event
 * (and `checkContinue` / `checkExpectation`, which stand in for it when the
 * server listens to them, lib/_http_server.js) runs its listeners inside the
 * request's server span.
 *
 * `Server.prototype.emit` is wrapped, not the `request` listeners: Node's
 * parser calls `server.emit('request', req, res)` for every request, so one
 * wrapper covers servers created before and after install, by any framework
 * (Express, Koa, Fastify: all are `http.Server`s). For every other event the
 * wrapper costs one string comparison.
 */
import type * as http from 'http';
import type { IncomingMessage, ServerResponse } from 'http';
import { spanInContext } from '../context';
import { optionsOf } from '../options';
import type { Instrumentation } from '../instrumentation';
import { runInServerSpan, trackRequest, type ServerSpanState } from '../server';
import { unwrapMethod, wrapMethod } from '../wrap';

type Component = 'http' | 'https';
interface ServerModule {
  Server: { prototype: Pick<http.Server, 'emit'> };
}

/** Prototypes whose `emit` was inherited (from EventEmitter) before we wrapped it: unpatch deletes our own copy. */
const inheritedEmit = new WeakSet<object>();

function isRequestEvent(event: unknown): boolean {
  return event === 'request' || event === 'checkContinue' || event === 'checkExpectation';
}

/**
 * Runs every event of the request (its body's 'data' and 'end', 'close',
 * 'aborted', ...) in its server span: Node emits them later, from the
 * connection's parser (lib/_http_server.js), after the handler has returned.
 * Scoped to the request object, not to the connection: nothing else that
 * runs on a keep-alive connection (the next request's parse errors, a
 * request dropped by `maxRequestsPerSocket`, requests after uninstall) sees
 * a request's span. An own, non-enumerable `emit` of this request only; it
 * stays after uninstall, so a request in flight keeps its context.
 */
function scopeRequestEvents(req: IncomingMessage, state: ServerSpanState): void {
  const inherited = req.emit;
  if (typeof inherited !== 'function') return;
  Object.defineProperty(req, 'emit', {
    value: function emit(this: unknown, event: string | symbol) {
      return spanInContext(state.span, () => inherited.apply(this, arguments as never));
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

function handleRequest(component: Component, original: (...args: unknown[]) => boolean, self: unknown, args: IArguments): boolean {
  const req = args[1] as IncomingMessage;
  const res = args[2] as ServerResponse;
  const { state, created } = trackRequest(req, res, component, optionsOf('http-server'));
  if (state === null) return original.apply(self, args as unknown as unknown[]);
  if (!created) {
    // Emitted again for a request already traced (a `checkContinue` listener emitting `request`).
    return runInServerSpan(state, () => original.apply(self, args as unknown as unknown[]));
  }
  try {
    scopeRequestEvents(req, state);
  } catch {
    // a frozen request: its body events run in the connection's context, untraced
  }
  return runInServerSpan(state, () => original.apply(self, args as unknown as unknown[]));
}

function makeInstrumentation(component: Component): Instrumentation<ServerModule> {
  return {
    name: 'http-server',
    module: component,
    patch(exports) {
      const proto = exports.Server.prototype;
      const own = Object.prototype.hasOwnProperty.call(proto, 'emit');
      // An inherited emit is looked up at each call, so that a later change
      // to EventEmitter.prototype.emit (the `domain` module makes one) still
      // reaches the servers, as it would without our own copy in between.
      const parent = Object.getPrototypeOf(proto) as { emit: (...args: unknown[]) => boolean };
      const wrapped = wrapMethod(proto, 'emit', (original) =>
        function emit(this: unknown, event: string | symbol) {
          const target = own ? (original as (...args: unknown[]) => boolean) : parent.emit;
          if (!isRequestEvent(event) || arguments.length < 3) return target.apply(this, arguments as never);
          return handleRequest(component, target, this, arguments);
        },
      );
      if (wrapped && !own) inheritedEmit.add(proto);
    },
    unpatch(exports) {
      const proto = exports.Server.prototype;
      unwrapMethod(proto, 'emit');
      if (inheritedEmit.has(proto)) {
        inheritedEmit.delete(proto);
        // shimmer restores by defining an own property: inherit again, as
        // before, unless someone else has put their own emit there since.
        const p = proto as { emit?: unknown };
        if (p.emit === (Object.getPrototypeOf(proto) as { emit?: unknown } | null)?.emit) delete p.emit;
      }
    },
  };
}

export const httpServer = makeInstrumentation('http');
export const httpsServer = makeInstrumentation('https');
