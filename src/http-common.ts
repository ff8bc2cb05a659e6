/**
 * The status rule every HTTP patch shares (http/https and axios clients, the
 * server side): `http.status_code`, and an error status (the patch's
 * `isErrorStatus`, default 5xx, judged by `isErrorStatusBy`) logged as
 * `HTTP 503 Service Unavailable`. One place, so the clients and the server
 * cannot drift apart in what marks a span failed.
 */
import type { Span } from 'opentracing';
import type { Call } from './call';
import { SERVER, TAG } from './constants';
import { isErrorStatusBy, tagErrorMessage } from './span';

/** Marks `span` failed by its status alone (no error object): `HTTP 503 Service Unavailable`. */
export function tagErrorStatus(span: Span, status: number, statusText: string | undefined): void {
  tagErrorMessage(span, SERVER.HTTP_STATUS_ERROR_KIND, `HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
}

/**
 * The response of a client call has arrived: tags its status, marks an
 * error status (unless `markStatus` is false: the caller records an error
 * object instead), then runs the response hook on `response` (the call
 * finishes later, when its body has been read or the library settles).
 * Returns whether the status is an error status.
 */
export function respondWithStatus<Response>(
  call: Call<Response>,
  isErrorStatus: ((status: number) => unknown) | undefined,
  status: number,
  statusText: string | undefined,
  response: Response,
  markStatus = true,
): boolean {
  call.setTags({ [TAG.HTTP_STATUS_CODE]: status });
  const errorStatus = isErrorStatusBy(call.patch, isErrorStatus, status);
  if (errorStatus && markStatus) tagErrorStatus(call.span, status, statusText);
  call.respond(response);
  return errorStatus;
}
