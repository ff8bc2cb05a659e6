/**
 * Client spans for Node's `http` and `https`: `request` and `get`, in every
 * call form Node accepts (URL string, `URL`, options object, `(url, options,
 * cb)`), on the shared call lifecycle (`src/call.ts`).
 *
 * Node builds the request from the caller's own arguments first; the span's
 * operation name and tags are read back from the `ClientRequest` (Node has
 * parsed and checked the arguments once already, and a call Node rejects
 * traces nothing), and the trace headers are set on the request with
 * `setHeader`, so the caller's headers object is never touched.
 */
import { errorMonitor } from 'events';
import type * as http from 'http';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'http';
import { Span as NoopSpan } from 'opentracing';
import { Call, startCall, type CallSpec } from '../call';
import { TAG } from '../constants';
import { activeOuterClient, isSuppressed, type OuterClient } from '../context';
import { respondWithStatus } from '../http-common';
import { argsWithHeaders, callerOptions, destinationHost, headersRenderedEarly, hostOf, portOf, urlOf } from '../http-request';
import type { DumpableResponse } from '../internal-types';
import type { Instrumentation } from '../instrumentation';
import { logOnce, safeCall } from '../logger';
import { optionsOf } from '../options';
import { addPeerTags, clientTags, finishSpan, injectHttpHeaders, isRecording, logRedirect, outerHopRedirect, startClientSpan, type TagMap } from '../span';
import { wrapMethod, unwrapMethod } from '../wrap';

type Component = 'http' | 'https';
type RequestFn = typeof http.request;
type HttpModule = Pick<typeof http, 'request' | 'get'>;

function requestTags(tags: TagMap, req: ClientRequest): void {
  tags[TAG.HTTP_METHOD] = req.method;
  tags[TAG.HTTP_URL] = urlOf(req);
  addPeerTags(tags, req.host, portOf(req));
}

/** Every call of both patches: the subject is the request Node made (the component is the patch name). */
const SPEC: CallSpec<ClientRequest, ClientRequest> = {
  operationName: (req) => req.method,
  tags: requestTags,
  request: (req) => req,
};

/**
 * Follows one request to the end of its response. The call finishes when
 * the response has been read to its end or closes (complete or not), or
 * when the request errors or closes without a response.
 */
function observe(call: Call<IncomingMessage>, req: ClientRequest): void {
  let response: IncomingMessage | undefined;
  let failure: unknown;
  req.on(errorMonitor, (err: unknown) => {
    if (response === undefined) call.finish(err);
    else failure = err;
  });
  req.once('close', () => {
    if (response !== undefined) return;
    // An 'upgrade' or 'connect' response is handed to the app without a
    // 'response' event; Node sets `req.res` and closes the request.
    const upgraded = (req as ClientRequest & { res?: IncomingMessage | null }).res;
    if (upgraded && failure === undefined) {
      call.setTags({ [TAG.HTTP_STATUS_CODE]: upgraded.statusCode ?? 0 });
      call.finish();
      return;
    }
    call.finish(failure ?? new Error('request closed before a response'));
  });
  req.prependListener('response', (res: IncomingMessage & DumpableResponse) => {
    response = res;
    const socket = res.socket;
    if (socket && typeof socket.remotePort === 'number') call.setTags({ [TAG.PEER_PORT]: socket.remotePort });
    respondWithStatus(call, optionsOf(call.patch as Component).isErrorStatus, res.statusCode ?? 0, res.statusMessage, res);
    res.on(errorMonitor, (err: unknown) => {
      failure = err;
    });
    // 'end' when the body was read to its end (the span ends before the app's
    // own 'end' handlers run, so a tracer closed there still gets it); 'close'
    // for every other ending.
    res.once('end', () => call.finish());
    res.once('close', () => call.finish(res.complete ? undefined : (failure ?? new Error('response aborted before its end'))));
    // We are a 'response' listener now, so Node will not discard a response
    // that nobody else listens to (ClientRequest: `if (!req.emit('response',
    // res)) res._dump()`). Do what Node would have done, or the socket stays pinned.
    if (req.listenerCount('response') === 1 && typeof res._dump === 'function') res._dump();
  });
}

/**
 * A request made for an outer client's call (axios over http: follow-redirects
 * makes one per hop): noted on the outer span, with the status of its
 * response for the next hop's redirect log. Only looked at when the request
 * already has a 'response' listener (the library's), so that adding one
 * changes nothing (without any, Node would discard the response itself).
 */
function followOuterHop(outer: OuterClient, req: ClientRequest): void {
  try {
    const redirected = outerHopRedirect(outer);
    if (redirected !== undefined) logRedirect(outer.span, redirected, urlOf(req));
    if (req.listenerCount('response') > 0) {
      // First: the library's own listener makes the next hop's request at once.
      req.prependOnceListener('response', (res: IncomingMessage) => {
        outer.lastStatus = res.statusCode;
      });
    }
  } catch (err) {
    logOnce('http:outer-hop', 'could not follow a request of an outer client call', err);
  }
}

/** Node's rule (lib/_http_client.js): null/undefined/'' is GET, a string is upper-cased, anything else throws (undefined here). */
function methodOf(opts: RequestOptions | undefined): string | undefined {
  const given: unknown = opts?.method;
  if (given === undefined || given === null || given === '') return 'GET';
  return typeof given === 'string' ? given.toUpperCase() : undefined;
}

/**
 * Node threw on the caller's arguments before any I/O: the call still gets its span, failed
 * with that error (the caller gets the same error); no request for a hook to see, no tags.
 */
function rejectedCall(component: Component, args: IArguments, err: unknown): void {
  try {
    const method = methodOf(callerOptions(args));
    const span = activeOuterClient() === undefined && method !== undefined ? startClientSpan(component, method) : undefined;
    if (span !== undefined) finishSpan(span, err);
  } catch (e) {
    logOnce(`${component}:args`, 'could not read the request arguments', e);
  }
}

/**
 * Node renders the header block of this request in its constructor (raw
 * array headers, `Expect`): the span starts before the request exists and
 * its trace headers go into a copy of the arguments. The kit's `startCall`
 * cannot serve this rare form: its request hook would have to run before
 * the `ClientRequest` it receives exists. So the span starts here, the hook
 * sees the request once made (as before), and the kit's `Call` ends it.
 */
function earlyRequest(component: Component, original: RequestFn, self: unknown, args: IArguments, opts: RequestOptions): ClientRequest {
  const method = methodOf(opts);
  if (method === undefined) return original.apply(self, args as never);
  const outer = activeOuterClient();
  const span = outer?.span ?? startClientSpan(component, method);
  if (span === undefined) return original.apply(self, args as never);
  const call = outer === undefined ? new Call<IncomingMessage>(component, span, isRecording(span), undefined) : undefined;
  let req: ClientRequest;
  try {
    const extra = span.constructor === NoopSpan ? {} : injectHttpHeaders(span, hostOf(args, opts), () => undefined);
    req = original.apply(self, argsWithHeaders(args, opts, extra) as Parameters<RequestFn>);
  } catch (err) {
    call?.finish(err); // invalid arguments: Node throws before any I/O, the same error goes to the caller
    throw err;
  }
  if (call !== undefined) follow(call, req, false);
  else followOuterHop(outer!, req);
  return req;
}

/** Tags, request hook (only for the early form: `startCall` ran it), then follows the request; fails open. */
function follow(call: Call<IncomingMessage>, req: ClientRequest, late: boolean): void {
  const options = optionsOf(call.patch as Component);
  try {
    if (!call.recording && !options.requestHook && !options.responseHook) {
      // Nothing will be recorded (a no-op tracer, an unsampled trace whose
      // sampling is final) and no hook will see it: propagate its context
      // (OpenTracing's no-op span has none) and finish now, without following the request.
      if (late && call.span.constructor !== NoopSpan) injectHttpHeaders(call.span, destinationHost(req), (name, value) => req.setHeader(name, value));
      call.finish();
      return;
    }
    if (!late) {
      if (call.recording) {
        const tags = clientTags(call.patch);
        requestTags(tags, req);
        call.setTags(tags);
      }
      safeCall(`${call.patch} requestHook`, options.requestHook, call.span, req);
    } else {
      injectHttpHeaders(call.span, destinationHost(req), (name, value) => req.setHeader(name, value));
    }
    observe(call, req);
  } catch (err) {
    logOnce(`${call.patch}:observe`, 'could not instrument a request; its span is closed now', err);
    call.finish();
  }
}

function tracedRequest(component: Component, original: RequestFn, self: unknown, args: IArguments): ClientRequest {
  if (isSuppressed()) return original.apply(self, args as never);
  // Argument reading that fails hands the call to Node untouched: Node throws its own error or copes.
  let early: RequestOptions | undefined;
  try {
    const opts = callerOptions(args);
    if (opts !== undefined && headersRenderedEarly(opts)) early = opts;
  } catch (err) {
    logOnce(`${component}:args`, 'could not read the request arguments; untraced', err);
    return original.apply(self, args as never);
  }
  if (early !== undefined) return earlyRequest(component, original, self, args, early);
  let req: ClientRequest;
  try {
    req = original.apply(self, args as never);
  } catch (err) {
    rejectedCall(component, args, err);
    throw err;
  }
  // A higher layer (axios) owns the span: propagate its context on every hop, add no span.
  const outer = activeOuterClient();
  if (outer !== undefined) {
    injectHttpHeaders(outer.span, destinationHost(req), (name, value) => req.setHeader(name, value));
    followOuterHop(outer, req);
    return req;
  }
  const call = startCall<ClientRequest, IncomingMessage, ClientRequest>(component, SPEC, req);
  if (call !== undefined) follow(call, req, true);
  return req;
}

function makeInstrumentation(component: Component): Instrumentation<HttpModule> {
  return {
    name: component,
    module: component,
    patch(exports) {
      // Both are wrapped: `get` calls the module's own `request` binding, not
      // `exports.request` (lib/http.js, lib/https.js), so wrapping `request`
      // alone would miss it. Our `get` is `request` + `end()`, as Node's is.
      const originalRequest = exports.request;
      wrapMethod(exports, 'request', (original) =>
        function request(this: unknown) {
          return tracedRequest(component, original, this, arguments);
        },
      );
      wrapMethod(exports, 'get', () =>
        function get(this: unknown) {
          const req = tracedRequest(component, originalRequest, this, arguments);
          req.end();
          return req;
        },
      );
    },
    unpatch(exports) {
      unwrapMethod(exports, 'request');
      unwrapMethod(exports, 'get');
    },
  };
}

export const httpClient = makeInstrumentation('http');
export const httpsClient = makeInstrumentation('https');
