/**
 * Narrow interfaces for the private parts of third-party libraries that the
 * patches touch. Each block names the upstream file it mirrors, so that a
 * change upstream is easy to check against.
 */

/** Node's `IncomingMessage._dump()` (lib/_http_incoming.js): discards a response nobody reads. */
export interface DumpableResponse {
  _dump?: () => void;
}
