/**
 * One call of the fetch patch, the record that owns every request of it: a
 * `fetch()` call from its first hop to the hop that answers it (WHATWG fetch
 * redirects), or one request undici runs on its own (`request`, `stream`: a
 * call of one hop, whose redirect is its answer). Its span is a `Call` of the
 * shared lifecycle (./call.ts); this file adds only what a call of several
 * requests needs: which hop speaks for it, and the redirect rules of fetch.
 */
import type { Span } from 'opentracing';
import { startCall, type Call, type CallSpec } from './call';
import { REDIRECT, TAG } from './constants';
import { bindToCurrentContext } from './context';
import { injectInto, injectUnrecorded, isAbort, locationOf, redactedUrl, redirectFailure, responseOf, type RedirectMode } from './fetch-request';
import type { UndiciRequest, UndiciResponseHead } from './internal-types';
import { logOnce } from './logger';
import { optionsOf, type FetchRequestLike, type FetchResponseLike } from './options';
import { addUrlPeerTags, isErrorStatusBy, logRedirect, tagErrorMessage } from './span';
import { tagErrorStatus } from './http-common';

const PATCH = 'fetch';

/** Counts the calls whose end is still to come through undici's channels (see ./fetch-channels.ts). */
export interface InFlight {
  follow(): void;
  unfollow(): void;
}

/** The spec of every call; `parent` is the starting call's, set only around its synchronous `startCall`. */
interface HopSpec extends CallSpec<FetchRequestLike, FetchCall> {
  parent: Span | null;
}
const HOP: HopSpec = {
  operationName: (c) => String(c.current!.method).toUpperCase(),
  tags: (tags, c) => {
    tags[TAG.HTTP_METHOD] = String(c.current!.method).toUpperCase();
    tags[TAG.HTTP_URL] = redactedUrl(c.url, c.parsed);
    if (c.parsed !== undefined) addUrlPeerTags(tags, c.parsed);
  },
  request: (c) => c.current as FetchRequestLike,
  parent: null,
};

function runFn(fn: () => void): void {
  fn();
}

export class FetchCall {
  /** Where the calls in flight are counted; set once by the hook. */
  static inFlight: InFlight | undefined;

  /** Started at the first hop; undefined before it, or when the call is not traced. */
  call: Call<FetchResponseLike> | undefined = undefined;
  /** The span is finished (or there is none): later hops only get trace context, if any. */
  done = false;
  /** Requests created for the call so far, and those dispatched but not created yet (queued in a full pool). */
  hops = 0;
  pending = 0;
  /** The latest hop: its request, its URL (what the response hook sees), whether its response head has come. */
  current: UndiciRequest | undefined = undefined;
  url = '';
  parsed: URL | undefined = undefined;
  responded = false;
  /** The latest hop answered with a redirect fetch is expected to follow: its response head. */
  redirect: { response: UndiciResponseHead; location: string } | undefined = undefined;
  /** Runs the response hook in the caller's context (undici publishes the response from the socket's). */
  runInCaller: ((fn: () => void) => void) | undefined = undefined;

  /** `parent`: current when the call was made. `redirectMode`: `manual` for a request undici runs on its own. */
  constructor(
    readonly parent: Span | undefined,
    readonly redirectMode: RedirectMode,
  ) {}

  /** A request created for the call: the first starts the span, a later one is a redirect fetch followed. */
  hop(request: UndiciRequest, url: string, parsed: URL | undefined): void {
    if (this.done) {
      if (this.call !== undefined) injectUnrecorded(this.call.span, request, parsed);
      return;
    }
    const previous = this.redirect;
    this.hops++;
    this.pending = 0;
    this.current = request;
    this.url = url;
    this.parsed = parsed;
    this.responded = false;
    this.redirect = undefined;
    if (this.call !== undefined) {
      logRedirect(this.call.span, previous?.response.statusCode, redactedUrl(url, parsed));
      injectInto(this.call.span, request, parsed);
      return;
    }
    HOP.parent = this.parent ?? null;
    const call = (this.call = startCall<FetchRequestLike, FetchResponseLike, FetchCall>(PATCH, HOP, this));
    HOP.parent = null;
    const options = optionsOf(PATCH);
    if (call === undefined || (!call.recording && !options.requestHook && !options.responseHook)) {
      // Nothing to record and no hook to see it: the context goes on every hop, the response is not followed.
      if (call !== undefined) injectUnrecorded(call.span, request, parsed);
      call?.finish();
      this.done = true;
      return;
    }
    if (typeof options.responseHook === 'function') this.runInCaller = bindToCurrentContext(runFn);
    injectInto(call.span, request, parsed);
    FetchCall.inFlight?.follow();
  }

  /** The response head of `request`: the call's answer, unless it is a redirect fetch follows. */
  headers(request: object, response: UndiciResponseHead): void {
    const call = this.call;
    if (this.current !== request || this.done || this.responded || call === undefined) return;
    this.responded = true;
    const status = response.statusCode;
    if (REDIRECT.STATUSES.has(status) && this.redirectMode !== 'manual') {
      // WHATWG fetch, HTTP fetch step 8: `error` fails the call on any redirect status.
      if (this.redirectMode === 'error') {
        call.setTags({ [TAG.HTTP_STATUS_CODE]: status });
        tagErrorMessage(call.span, REDIRECT.ERROR_KIND, `HTTP ${status}: a redirect, and the call has redirect: 'error'`);
        return;
      }
      // Followed when it says where to (HTTP-redirect fetch step 4): this hop does not answer the call.
      const location = locationOf(response.headers);
      if (location !== undefined) {
        this.redirect = { response, location };
        return;
      }
    }
    this.respond(call, response);
  }

  /** `request` has ended (`failed`: with `err`). Only the latest hop speaks for the call; a redirect hands over to the next. */
  ended(request: object, failed: boolean, err?: unknown): void {
    if (this.current !== request || this.done) return;
    if (this.redirect !== undefined) this.awaitNextHop();
    // Before a response any failure (abort included) is the call's; after one, an abort is the application done with the body.
    else this.end(failed && !(this.responded && isAbort(err)) ? err : undefined);
  }

  /** Finishes the call's span once, with `err` when given. */
  end(err?: unknown): void {
    if (this.done) return;
    this.done = true;
    if (this.call === undefined) return;
    this.call.finish(err);
    FetchCall.inFlight?.unfollow();
  }

  /** Status, error status and the response hook of the response that answers the call. */
  private respond(call: Call<FetchResponseLike>, response: UndiciResponseHead): void {
    const status = response.statusCode;
    const options = optionsOf(PATCH);
    call.setTags({ [TAG.HTTP_STATUS_CODE]: status });
    if (isErrorStatusBy(PATCH, options.isErrorStatus, status)) tagErrorStatus(call.span, status, response.statusText);
    if (typeof options.responseHook !== 'function') return;
    const run = (): void => call.respond(responseOf(response, this.url));
    if (this.runInCaller !== undefined) this.runInCaller(run);
    else run();
  }

  /**
   * The latest hop has ended with a redirect fetch follows: the next hop's
   * request is created in the microtasks that follow. When none is by the
   * time the event loop has moved on, and none waits in a pool queue, fetch
   * failed the call there (too many redirects, a Location it refuses, an
   * abort in between): the call ends.
   */
  private awaitNextHop(): void {
    const hops = this.hops;
    setImmediate(() => {
      if (this.done || this.hops !== hops || this.pending > 0) return;
      const { call, redirect } = this;
      try {
        if (call === undefined || redirect === undefined) {
          // nothing to record
        } else if (this.redirectMode === 'follow') {
          call.setTags({ [TAG.HTTP_STATUS_CODE]: redirect.response.statusCode });
          tagErrorMessage(call.span, REDIRECT.ERROR_KIND, redirectFailure(redirect.location, this.url, this.hops));
        } else {
          // `unknown`: the call may have asked for the redirect itself (`manual`); it answered the call.
          this.respond(call, redirect.response);
        }
      } catch (err) {
        logOnce('fetch:redirect', 'could not record a redirect failure', err);
      }
      this.end();
    });
  }
}
