/**
 * Client spans for the AWS SDK for JavaScript v3: one span per
 * `client.send(command)` (promise or callback; the aggregated methods
 * `s3.putObject(...)` and the paginators call `send`), over all its retries.
 *
 * The seam is `Client.prototype.send` of the Smithy base class every
 * `@aws-sdk/client-*` extends: stable through the SDK's refactors, where the
 * middleware stack was not. Its package moved: `@aws-sdk/smithy-client`
 * (clients < 3.363), `@smithy/smithy-client`, then the `./client` subpath of
 * `@smithy/core` (>= 3.24; clients >= 3.1054). The loader reports a package's
 * main file, so for `@smithy/core` the patch loads the `./client` subpath of
 * that same copy, which every client loads anyway.
 *
 * The SDK's HTTP requests run silenced (no http/fetch span, no trace header:
 * AWS ignores them, and one added after SigV4 signing is outside the
 * signature) unless `propagateTo` is configured; then the http/fetch patch
 * writes this span's context to the hosts it allows (`runWithOuterClient`).
 */
import { createRequire } from 'module';
import { startCall, type Call } from '../call';
import { AWS, TAG } from '../constants';
import { bindToCurrentContext, isSuppressed, runWithOuterClient, suppressInstrumentation, type OuterClient } from '../context';
import type { Instrumentation } from '../instrumentation';
import type { SmithyClient, SmithyClientModule, SmithyCommand, SmithyResponseMetadata } from '../internal-types';
import { logOnce } from '../logger';
import { propagationRules, type PatchOptions } from '../options';
import { redactUrl } from '../redact';
import { addPeerTags, type TagMap } from '../span';
import { unwrapMethod, wrapMethod } from '../wrap';

const COMPONENT = 'aws-sdk';

/** What the `aws-sdk` request hook receives: `S3`, `PutObject`, the command given to `send` (`command.input`: the parameters). */
export interface AwsSdkRequest {
  readonly service: string;
  readonly operation: string;
  readonly command: unknown;
}

/** What the `aws-sdk` response hook receives: the command's output, with its `$metadata`. */
export interface AwsSdkResponse {
  readonly $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number };
  readonly [key: string]: unknown;
}

/**
 * Options of the `aws-sdk` patch: the shared ones (`requestHook`,
 * `responseHook`, `requireParentSpan`). Trace headers follow the global
 * `propagateTo` (see docs/clients/aws-sdk.md).
 */
export interface AwsSdkOptions extends PatchOptions<AwsSdkRequest, AwsSdkResponse> {}

/**
 * The service as its client class names it (`S3Client`: `S3`,
 * `CloudWatchLogsClient`: `CloudWatchLogs`; the aggregated `S3` extends
 * `S3Client`), else the config's `serviceId` (`S3`; lower case `s3` in
 * early v3 clients; with spaces for some services).
 */
function serviceOf(client: SmithyClient): string {
  for (let proto = Object.getPrototypeOf(client) as { constructor?: { name?: unknown } } | null; proto !== null; proto = Object.getPrototypeOf(proto)) {
    const name = proto.constructor?.name;
    if (typeof name === 'string' && name.length > 6 && name.endsWith('Client')) return name.slice(0, -6);
  }
  const id = client.config?.serviceId;
  return typeof id === 'string' && id !== '' ? id : 'AWS';
}

function operationOf(command: SmithyCommand): string {
  const name = command.constructor?.name;
  return typeof name === 'string' && name !== '' ? name.replace(/Command$/, '') : 'Unknown';
}

/** The resources the contract names, where the command's input has them. */
function resourceTags(tags: TagMap, input: Record<string, unknown> | undefined): void {
  if (input === undefined || input === null || typeof input !== 'object') return;
  if (typeof input.Bucket === 'string') tags[AWS.S3_BUCKET] = input.Bucket;
  if (typeof input.TableName === 'string') tags[AWS.DYNAMODB_TABLE_NAME] = input.TableName;
  if (typeof input.QueueUrl === 'string') tags[AWS.SQS_QUEUE_URL] = redactUrl(input.QueueUrl);
}

/**
 * A config value that may be a provider (`config.region` is an async function
 * once resolved): used now if plain, when its promise settles if not. Never
 * awaited, so the call is not held up; the SDK resolves it before it sends.
 */
function whenKnown(value: unknown, use: (v: unknown) => void): void {
  const result: unknown = typeof value === 'function' ? (value as () => unknown)() : value;
  if (result instanceof Promise) result.then(use, () => undefined);
  else if (result !== undefined) use(result);
}

/** Tags known only later (region, custom endpoint: the client resolves them asynchronously) go into `late`. */
function readLate(client: SmithyClient, late: TagMap): void {
  try {
    const config = client.config;
    if (config === undefined) return;
    whenKnown(config.region, (region) => {
      if (typeof region === 'string') late[AWS.REGION] = region;
    });
    // A custom endpoint (LocalStack, MinIO, a VPC endpoint) is in the config;
    // an AWS one is chosen per command by the endpoint rules and is not.
    whenKnown(config.endpoint, (endpoint) => {
      const e = endpoint as { hostname?: unknown; port?: unknown; protocol?: unknown };
      if (typeof e?.hostname !== 'string') return;
      const port = typeof e.port === 'number' || typeof e.port === 'string' ? e.port : e.protocol === 'http:' ? 80 : 443;
      addPeerTags(late, e.hostname, port);
    });
  } catch (err) {
    logOnce('aws-sdk:config', 'could not read the region or endpoint of an AWS SDK client', err);
  }
}

/** One traced `send`: its span, the tags known later, the outer client the HTTP layer sees (when headers may go). */
interface SendCall {
  readonly call: Call<AwsSdkResponse>;
  readonly late: TagMap;
  readonly outer?: OuterClient;
}

/** Tags what `send` settled with, then finishes the span. Never throws. */
function settle(c: SendCall, err: unknown, output: unknown): void {
  if (c.outer !== undefined) c.outer.done = true;
  try {
    const metadata = ((err ?? output) as { $metadata?: SmithyResponseMetadata } | null | undefined)?.$metadata;
    const tags: TagMap = { ...c.late };
    if (metadata !== undefined && metadata !== null) {
      if (typeof metadata.httpStatusCode === 'number') tags[TAG.HTTP_STATUS_CODE] = metadata.httpStatusCode;
      if (typeof metadata.requestId === 'string') tags[AWS.REQUEST_ID] = metadata.requestId;
      if (typeof metadata.attempts === 'number' && metadata.attempts > 1) tags[AWS.ATTEMPTS] = metadata.attempts;
    }
    c.call.setTags(tags);
  } catch (e) {
    logOnce('aws-sdk:settle', 'could not tag the outcome of an AWS SDK call', e);
  }
  if (err !== undefined && err !== null) c.call.finish(err);
  else c.call.finish(undefined, output as AwsSdkResponse, true);
}

/**
 * Starts the span of one `send`. The SDK's HTTP requests then run under it
 * as an outer client (the http or fetch patch adds no span and writes this
 * span's context where `propagateTo` allows) when the user configured
 * `propagateTo` (rules without a list allow even an unknown host), else
 * silenced: no span, no header.
 */
function begin(client: SmithyClient, command: unknown): SendCall | undefined {
  const cmd = (command ?? {}) as SmithyCommand;
  const service = serviceOf(client);
  const operation = operationOf(cmd);
  const call = startCall<AwsSdkRequest, AwsSdkResponse>(COMPONENT, {
    operationName: `${AWS.OPERATION_PREFIX}${service}.${operation}`,
    tags: (tags) => {
      tags[AWS.SERVICE] = service;
      tags[AWS.OPERATION] = operation;
      resourceTags(tags, cmd.input);
    },
    request: () => ({ service, operation, command }),
  });
  if (call === undefined) return undefined;
  const late: TagMap = {};
  // Silenced like the SDK's own reads of them: a provider could make a request.
  if (call.recording) suppressInstrumentation(() => readLate(client, late));
  return propagationRules().allows(undefined) ? { call, late } : { call, late, outer: { span: call.span, component: COMPONENT, done: false } };
}

type Send = SmithyClient['send'];

function tracedSend(original: Send): Send {
  return function send(this: SmithyClient, command: unknown) {
    if (isSuppressed()) return original.apply(this, arguments as unknown as Parameters<Send>);
    const args = Array.prototype.slice.call(arguments) as unknown[];
    let c: SendCall | undefined;
    try {
      c = begin(this, command);
      // `send(command, cb)` or `send(command, options, cb)`, as smithy's Client.send picks it.
      const at = typeof args[1] === 'function' ? 1 : typeof args[2] === 'function' ? 2 : -1;
      const callback = args[at] as (...a: unknown[]) => unknown;
      const traced = c;
      // Bound: the SDK calls it from its own promise chain, which runs underneath (silenced).
      if (at !== -1) args[at] = bindToCurrentContext(function (this: unknown, err: unknown, output: unknown) {
        if (traced !== undefined) settle(traced, err, output);
        return callback.apply(this, arguments as unknown as unknown[]);
      });
    } catch (err) {
      logOnce('aws-sdk:start', 'could not start the span of an AWS SDK call; it goes on untraced', err);
      c?.call.finish();
      return original.apply(this, arguments as unknown as Parameters<Send>);
    }
    const traced = c;
    const run = (): unknown => original.apply(this, args as Parameters<Send>);
    let result: unknown;
    try {
      // A call we do not trace is silenced too: its HTTP requests are the SDK's, not the application's.
      result = traced?.outer !== undefined ? runWithOuterClient(traced.outer, run) : suppressInstrumentation(run);
    } catch (err) {
      if (traced !== undefined) settle(traced, err, undefined);
      throw err;
    }
    // The SDK's own promise goes back to the caller; our reaction only records its outcome.
    if (traced !== undefined && result instanceof Promise) {
      result.then(
        (output: unknown) => settle(traced, undefined, output),
        (err: unknown) => settle(traced, err, undefined),
      );
    }
    return result;
  };
}

/** Wraps `Client.prototype.send` of a module holding the base class. */
function patchClass(module: SmithyClientModule | undefined): void {
  const proto = module?.Client?.prototype;
  if (proto === undefined || typeof proto.send !== 'function') throw new Error('unsupported Smithy client: no Client.prototype.send');
  wrapMethod(proto, 'send', tracedSend);
}

function unpatchClass(module: SmithyClientModule | undefined): void {
  if (module?.Client?.prototype !== undefined) unwrapMethod(module.Client.prototype, 'send');
}

/** `@smithy/core`'s `./client` subpath of the copy whose main exports are `exports`. */
const clientModules = new WeakMap<object, SmithyClientModule>();

function clientModuleOf(exports: object): SmithyClientModule | undefined {
  const known = clientModules.get(exports);
  if (known !== undefined) return known;
  for (const file of Object.keys(require.cache)) {
    if (require.cache[file]?.exports !== exports) continue;
    // Package self-reference: resolves through @smithy/core's own `exports` map to this copy.
    const module = createRequire(file)('@smithy/core/client') as SmithyClientModule;
    clientModules.set(exports, module);
    return module;
  }
  return undefined;
}

/** `@smithy/core` >= 3.24: the base class is in its `./client` subpath. */
export const smithyCore: Instrumentation<object> = {
  name: COMPONENT,
  module: '@smithy/core',
  versions: '>=3.24.0 <4',
  patch: (exports) => patchClass(clientModuleOf(exports)),
  unpatch: (exports) => unpatchClass(clientModules.get(exports)),
};

/** `@smithy/smithy-client` (1.x to 4.x; 4.13+ re-exports the class of `@smithy/core/client`). */
export const smithyClient: Instrumentation<SmithyClientModule> = { name: COMPONENT, module: '@smithy/smithy-client', versions: '>=1 <5', patch: patchClass, unpatch: unpatchClass };

/** `@aws-sdk/smithy-client`: clients before 3.363 (same class, before the move to @smithy). */
export const awsSmithyClient: Instrumentation<SmithyClientModule> = { ...smithyClient, module: '@aws-sdk/smithy-client', versions: '>=3 <4' };
