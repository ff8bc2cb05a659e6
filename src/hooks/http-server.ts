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
import { executionAsyncResource } from 'async_hooks';
import type * as http from 'http';
import type { IncomingMessage, ServerResponse } from 'http';
import { currentStore, enterSpan, enterStore, type ContextStore } from '../context';
import { optionsOf } from '../options';
import type { Instrumentation } from '../instrumentation';
import { callHandler, runInServerSpan, trackRequest } from '../server';
import { unwrapMethod, wrapMethod } from '../wrap';

type Component = 'http' | 'https';
interface ServerModule {
  Server: { prototype: Pick<http.Server, 'emit'> };
}

/** Prototypes whose `emit` was inherited (from EventEmitter) before we wrapped it: unpatch deletes our own copy. */
const inheritedEmit = new WeakSet<object>();

/** Per connection resource: the context it had before a traced request changed it. */
const baseStores = new WeakMap<object, { store: ContextStore | undefined }>();

function isRequestEvent(event: unknown): boolean {
  return event === 'request' || event === 'checkContinue' || event === 'checkExpectation';
}

/**
 * The async resource of the connection's HTTP parser when Node's parser is
 * emitting the request right now: lib/_http_server.js gives each connection
 * an `HTTPServerAsyncResource` holding its socket, and runs the parser's
 * callbacks (headers, body, end of message) in it. Undefined when someone
 * else emits the event (a manual `server.emit('request', ...)`).
 */
function connectionResource(req: IncomingMessage): object | undefined {
  const resource = executionAsyncResource() as { socket?: unknown };
  return resource !== null && typeof resource === 'object' && resource.socket === req.socket && req.socket != null
    ? resource
    : undefined;
}

function handleRequest(component: Component, original: (...args: unknown[]) => boolean, self: unknown, args: IArguments): boolean {
  const req = args[1] as IncomingMessage;
  const res = args[2] as ServerResponse;
  const { state, created } = trackRequest(req, res, component, optionsOf('http-server'));
  if (state === null) {
    // Untraced (ignored, suppressed): undo what a traced request before it on
    // the same keep-alive connection left as the connection's context.
    const resource = connectionResource(req);
    const base = resource && baseStores.get(resource);
    if (base) enterStore(base.store);
    return original.apply(self, args as unknown as unknown[]);
  }
  const resource = created ? connectionResource(req) : undefined;
  if (resource === undefined) {
    // Emitted again for a request already traced (a `checkContinue` listener
    // emitting `request`), or not by Node's parser: scoped to this call only.
    return runInServerSpan(state, () => original.apply(self, args as unknown as unknown[]));
  }
  // The span stays current in the connection's resource after the handler
  // returns, for the request body's events ('data', 'end') that Node emits later.
  if (!baseStores.has(resource)) baseStores.set(resource, { store: currentStore() });
  enterSpan(state.span);
  return callHandler(state, () => original.apply(self, args as unknown as unknown[]));
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
