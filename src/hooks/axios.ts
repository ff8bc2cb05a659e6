/**
 * Client spans for axios 1.x: one span per axios request, whatever the call
 * form (`axios(config)`, `axios.get(url)`, instances from `axios.create()`,
 * made before or after install) and whichever adapter (`http`, `fetch`, or
 * one of the application's own).
 *
 * The seam is `Axios.prototype._request` (lib/core/Axios.js). The default
 * export and every instance are `bind(Axios.prototype.request, context)`
 * made at creation time, so a later wrap of `request` misses `axios(config)`;
 * `request` however calls `this._request`, which every form reaches through
 * the prototype.
 *
 * The wrapper hands axios a copy of the call's config whose `adapter` is a
 * stand-in for the adapter axios would have picked. So the span starts when
 * axios dispatches (after request interceptors and `transformRequest`: method
 * and URL are final, and whatever the interceptors themselves call is not
 * part of it) and ends when the axios call settles, with the axios response
 * (data transformed) for the response hook. The real adapter runs inside
 * `runWithOuterClient`: the http/https or fetch patch underneath adds no span
 * of its own and writes this span's context on every hop, redirects
 * included, subject to `propagateTo`. axios' `config.headers` are never touched.
 */
import type { Span } from 'opentracing';
import { startCall, type Call, type CallSpec } from '../call';
import { TAG } from '../constants';
import { getCurrentSpan, isSuppressed, runWithOuterClient, suppressInstrumentation, type OuterClient } from '../context';
import { respondWithStatus } from '../http-common';
import { callerConfig, fullUrl, looksLikeResponse, realAdapter, responseOf, STANDS_FOR, type AxiosModule } from '../http-axios';
import type { AxiosAdapter, AxiosConfig, AxiosContext, AxiosExports, AxiosPrototype } from '../internal-types';
import { logOnce } from '../logger';
import { optionsOf, type AxiosResponseLike } from '../options';
import type { Instrumentation } from '../instrumentation';
import { redactUrl } from '../redact';
import { addUrlPeerTags, tagError, type TagMap } from '../span';
import { unwrapMethod, wrapMethod } from '../wrap';

const COMPONENT = 'axios';

/**
 * One axios call, from `_request` to its settlement. It is also the call's
 * `CallSpec` and subject: the parent is the current span when `_request` was
 * called, not when axios dispatches (after its interceptors), so the spec
 * differs per call; the record made for the call anyway carries it, and its
 * spec functions read the call from their argument, so no object or
 * closure is added per call.
 */
class AxiosCall implements CallSpec<AxiosConfig, AxiosCall> {
  /** The caller's own `adapter` setting (undefined: the instance's default). */
  spec: unknown = undefined;
  dispatched = false;
  settled = false;
  /** The config at dispatch (method and URL final). */
  config: AxiosConfig | undefined = undefined;
  call?: Call<AxiosResponseLike>;
  outer?: OuterClient;
  /** The adapter's own outcome (a native promise): its response, or its rejection. */
  adapterDone = false;
  response?: AxiosResponseLike;
  adapterError?: unknown;
  /** `null`: there was no current span (`undefined` would make `startCall` look again). */
  readonly parent: Span | null;

  constructor(
    readonly module: AxiosModule,
    readonly self: AxiosContext,
  ) {
    this.parent = getCurrentSpan() ?? null;
  }

  operationName(a: AxiosCall): string {
    return String(a.config!.method || 'get').toUpperCase();
  }

  tags(tags: TagMap, a: AxiosCall): void {
    requestTags(tags, a, a.config!);
  }

  request(a: AxiosCall): AxiosConfig {
    return a.config!;
  }
}

function requestTags(tags: TagMap, call: AxiosCall, config: AxiosConfig): void {
  tags[TAG.HTTP_METHOD] = call.operationName(call);
  const uri = fullUrl(call.module, config);
  if (typeof uri === 'string' && uri !== '') {
    tags[TAG.HTTP_URL] = redactUrl(uri);
    try {
      addUrlPeerTags(tags, new URL(uri));
    } catch {
      // a relative URL: no peer to name
    }
  }
}

/** Starts the span and runs the real adapter under it; fails open to the plain adapter. */
function dispatch(a: AxiosCall, real: AxiosAdapter, self: unknown, config: AxiosConfig): unknown {
  if (a.parent === null && optionsOf(COMPONENT).requireParentSpan === true) {
    // Not traced at all: not here, and not by the http or fetch patch underneath.
    return suppressInstrumentation(() => real.call(self, config));
  }
  a.config = config;
  const call = startCall<AxiosConfig, AxiosResponseLike, AxiosCall>(COMPONENT, a, a);
  if (call === undefined) return real.call(self, config);
  const outer: OuterClient = { span: call.span, component: COMPONENT, done: false };
  a.call = call;
  a.outer = outer;
  let result: unknown;
  try {
    result = runWithOuterClient(outer, () => real.call(self, config));
  } catch (err) {
    // A throwing adapter: axios turns it into the call's rejection, which finishes the span.
    a.adapterDone = true;
    a.adapterError = err;
    throw err;
  }
  // Only a native promise: calling `then` on someone's thenable may have effects.
  // Our reaction runs before dispatchRequest's and only records the outcome.
  if (result instanceof Promise) {
    result.then(
      (response: unknown) => {
        a.adapterDone = true;
        if (looksLikeResponse(response)) a.response = response;
      },
      (err: unknown) => {
        a.adapterDone = true;
        a.adapterError = err;
      },
    );
  }
  return result;
}

/** A stand-in for the adapter setting `call.spec`: the first dispatch of its own call is traced. */
function makeStandIn(call: AxiosCall): AxiosAdapter {
  const standIn = function adapter(this: unknown, config: AxiosConfig): unknown {
    const real = realAdapter(call.module, call.self, call.spec, config);
    // A stand-in that outlived its call (a stored config replayed after an
    // uninstall, say) is just the adapter it stands for.
    if (call.dispatched || call.settled) return real.call(this, config);
    call.dispatched = true;
    return dispatch(call, real, this, config);
  };
  Object.defineProperty(standIn, STANDS_FOR, { value: call.spec });
  return standIn;
}

/** `_request`'s arguments with the stand-in adapter in a copy of the caller's config; undefined: leave the call alone. */
function argsWithStandIn(args: IArguments, call: AxiosCall): unknown[] | undefined {
  const caller = callerConfig(args);
  if (caller === undefined) return undefined;
  call.spec = caller.adapter;
  return [{ ...caller.config, adapter: makeStandIn(call) }];
}

/** The axios call has settled: status, response hook, error, finish. Never throws. */
function settle(a: AxiosCall, failed: boolean, outcome: unknown): void {
  a.settled = true;
  const call = a.call;
  if (call === undefined || a.outer === undefined || a.outer.done) return;
  a.outer.done = true;
  let fails = failed;
  try {
    const response =
      a.response ?? responseOf(a.adapterError) ?? (failed ? responseOf(outcome) : looksLikeResponse(outcome) ? outcome : undefined);
    if (response !== undefined) {
      // A rejection that only says "this status" (validateStatus) is judged by
      // the status; any other (network, timeout, cancel, transformResponse, an
      // interceptor) marks the span. An error status of a rejected call logs the rejection.
      const explainedByStatus = failed && (a.adapterDone ? outcome === a.adapterError : responseOf(outcome) === response);
      const errorStatus = respondWithStatus(call, optionsOf(COMPONENT).isErrorStatus, response.status, response.statusText, response, !failed);
      fails = failed && (errorStatus || !explainedByStatus);
    }
    if (fails && (outcome === undefined || outcome === null)) tagError(call.span, outcome); // a rejection without a reason
  } catch (err) {
    logOnce('axios:settle', 'could not complete the axios span', err);
  }
  call.finish(fails ? outcome : undefined);
}

function tracedRequest(module: AxiosModule, original: AxiosPrototype['_request']): AxiosPrototype['_request'] {
  return function _request(this: AxiosContext) {
    if (isSuppressed()) return original.apply(this, arguments as unknown as [unknown, unknown]);
    let call: AxiosCall | undefined;
    let args: unknown[] | undefined;
    try {
      call = new AxiosCall(module, this);
      args = argsWithStandIn(arguments, call);
    } catch (err) {
      logOnce('axios:args', 'could not read the axios call arguments; untraced', err);
      args = undefined;
    }
    if (call === undefined || args === undefined) return original.apply(this, arguments as unknown as [unknown, unknown]);
    const traced = call;
    let result: unknown;
    try {
      result = original.apply(this, args as [unknown, unknown]);
    } catch (err) {
      settle(traced, true, err);
      throw err;
    }
    // `request` awaits this promise, so our reaction changes nothing about
    // unhandled rejections or timing; it runs when the axios call settles.
    if (result instanceof Promise) {
      result.then(
        (value: unknown) => settle(traced, false, value),
        (err: unknown) => settle(traced, true, err),
      );
    } else {
      settle(traced, false, result);
    }
    return result;
  };
}

export const axiosClient: Instrumentation<AxiosExports> = {
  name: COMPONENT,
  module: 'axios',
  patch(exports) {
    const proto = exports.Axios?.prototype;
    const getAdapter = exports.getAdapter;
    if (proto === undefined || typeof proto._request !== 'function' || typeof proto.getUri !== 'function' || typeof getAdapter !== 'function') {
      throw new Error('unsupported axios version: needs Axios.prototype._request, getUri and axios.getAdapter');
    }
    const module: AxiosModule = { getAdapter, defaults: exports.defaults, proto };
    wrapMethod(proto, '_request', (original) => tracedRequest(module, original));
  },
  unpatch(exports) {
    const proto = exports.Axios?.prototype;
    if (proto !== undefined) unwrapMethod(proto, '_request');
  },
};
