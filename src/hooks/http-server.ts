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
import { optionsOf } from '../options';
import type { Instrumentation } from '../patcher';
import { runInServerSpan, trackRequest } from '../server';
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

function makeInstrumentation(component: Component): Instrumentation<ServerModule> {
  return {
    name: 'http-server',
    module: component,
    patch(exports) {
      const proto = exports.Server.prototype;
      const own = Object.prototype.hasOwnProperty.call(proto, 'emit');
      const wrapped = wrapMethod(proto, 'emit', (original) =>
        function emit(this: unknown, event: string | symbol) {
          if (!isRequestEvent(event) || arguments.length < 3) return original.apply(this, arguments as never);
          const req = arguments[1] as IncomingMessage;
          const res = arguments[2] as ServerResponse;
          const { state } = trackRequest(req, res, component, optionsOf('http-server'));
          if (state === null) return original.apply(this, arguments as never);
          const self = this;
          const args = arguments;
          return runInServerSpan(state, () => original.apply(self, args as never));
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
