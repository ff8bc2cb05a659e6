/**
 * Client spans for the AWS SDK for JavaScript v3: one span per
 * `client.send(command)`, whatever the client (`@aws-sdk/client-*`) and the
 * call form (`send` with a promise or a callback, the aggregated methods
 * `s3.putObject(...)` and the paginators, which both call `send`), covering
 * every retry attempt the SDK makes inside it.
 *
 * The seam is `Client.prototype.send` of the Smithy base class every client
 * extends. It has kept its shape through the SDK's refactors, while the
 * middleware stack (what other instrumentations hook) has not; only its
 * package moved: `@aws-sdk/smithy-client` (before 3.363), `@smithy/smithy-client`,
 * then the `./client` subpath of `@smithy/core` (>= 3.24, clients >= 3.1054;
 * `@smithy/smithy-client` 4.13+ re-exports it). The loader hooks packages by
 * their main file, so for `@smithy/core` the patch receives its main exports
 * and loads the `./client` subpath of that same copy (by package
 * self-reference), which every client loads anyway.
 *
 * The HTTP request underneath is the SDK's business: it runs silenced (no
 * http or fetch span, no trace header) unless `propagateTo` is configured,
 * in which case the http/fetch patch writes this span's context on the hosts
 * it allows, as for any outer client (src/context.ts `runWithOuterClient`).
 * AWS ignores trace headers, and a header added after SigV4 signing is not
 * covered by the signature: by default nothing is added.
 */
import { createRequire } from 'module';
import type { Call } from '../call';
import { startCall } from '../call';
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

/** What the `aws-sdk` request hook receives. */
export interface AwsSdkRequest {
  /** `S3`, `DynamoDB`: the client's service id. */
  readonly service: string;
  /** `PutObject`: the command's name without `Command`. */
  readonly operation: string;
  /** The command object passed to `send` (its `input` is the caller's parameters). */
  readonly command: unknown;
}

/** What the `aws-sdk` response hook receives: the command's output, with its `$metadata`. */
export interface AwsSdkResponse {
  readonly $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number };
  readonly [key: string]: unknown;
}

/** Options of the `aws-sdk` patch (the shared ones: hooks and `requireParentSpan`). */
export type AwsSdkOptions = PatchOptions<AwsSdkRequest, AwsSdkResponse>;

/** What a call learns after it started: the region and endpoint the client resolves asynchronously. */
interface Late {
  tags: TagMap;
}

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
 * Reads a config value that may be a provider (`config.region` is an async
 * function once resolved): a plain value now, a promise's value when it
 * settles. Never awaited: the call is not held up; the value is tagged at
 * finish if it is known by then (the SDK resolves both before it sends).
 */
function whenKnown(value: unknown, use: (v: unknown) => void): void {
  if (typeof value !== 'function') {
    if (value !== undefined) use(value);
    return;
  }
  const result: unknown = (value as () => unknown)();
  if (result instanceof Promise) result.then(use, () => undefined);
  else if (result !== undefined) use(result);
}

function readLate(client: SmithyClient, late: Late): void {
  try {
    const config = client.config;
    if (config === undefined) return;
    whenKnown(config.region, (region) => {
      if (typeof region === 'string') late.tags[AWS.REGION] = region;
    });
    // A custom endpoint (LocalStack, MinIO, a VPC endpoint) is in the config;
    // an AWS one is chosen per command by the endpoint rules and is not.
    whenKnown(config.endpoint, (endpoint) => {
      const e = endpoint as { hostname?: unknown; port?: unknown; protocol?: unknown };
      if (typeof e?.hostname !== 'string') return;
      const port = typeof e.port === 'number' || typeof e.port === 'string' ? e.port : e.protocol === 'http:' ? 80 : 443;
      addPeerTags(late.tags, e.hostname, port);
    });
  } catch (err) {
    logOnce('aws-sdk:config', 'could not read the region or endpoint of an AWS SDK client', err);
  }
}

/** Tags what `send` settled with, then finishes the span. Never throws. */
function settle(call: Call<AwsSdkResponse>, late: Late, err: unknown, output: unknown): void {
  try {
    const metadata = ((err ?? output) as { $metadata?: SmithyResponseMetadata } | null | undefined)?.$metadata;
    const tags: TagMap = { ...late.tags };
    if (metadata !== undefined && metadata !== null) {
      if (typeof metadata.httpStatusCode === 'number') tags[TAG.HTTP_STATUS_CODE] = metadata.httpStatusCode;
      if (typeof metadata.requestId === 'string') tags[AWS.REQUEST_ID] = metadata.requestId;
      if (typeof metadata.attempts === 'number' && metadata.attempts > 1) tags[AWS.ATTEMPTS] = metadata.attempts;
    }
    call.setTags(tags);
  } catch (e) {
    logOnce('aws-sdk:settle', 'could not tag the outcome of an AWS SDK call', e);
  }
  if (err !== undefined && err !== null) call.finish(err);
  else call.finish(undefined, output as AwsSdkResponse, true);
}

/**
 * Runs the SDK's work for one call: under an outer client span (the http or
 * fetch patch adds no span and writes this span's context where
 * `propagateTo` allows) when the user configured `propagateTo`, else silenced.
 * A call we do not trace is silenced too: its HTTP requests belong to it.
 */
function underneath<T>(call: Call<AwsSdkResponse> | undefined, fn: () => T): { result: T; outer?: OuterClient } {
  // Rules without a `propagateTo` list allow even an unknown host.
  if (call === undefined || propagationRules().allows(undefined)) return { result: suppressInstrumentation(fn) };
  const outer: OuterClient = { span: call.span, component: COMPONENT, done: false };
  return { result: runWithOuterClient(outer, fn), outer };
}

type Send = SmithyClient['send'];

function tracedSend(original: Send): Send {
  return function send(this: SmithyClient, command: unknown) {
    if (isSuppressed()) return original.apply(this, arguments as unknown as Parameters<Send>);
    const args = Array.prototype.slice.call(arguments) as unknown[];
    let call: Call<AwsSdkResponse> | undefined;
    const late: Late = { tags: {} };
    try {
      const cmd = (command ?? {}) as SmithyCommand;
      const service = serviceOf(this);
      const operation = operationOf(cmd);
      call = startCall<AwsSdkRequest, AwsSdkResponse>(COMPONENT, {
        operationName: `${AWS.OPERATION_PREFIX}${service}.${operation}`,
        tags: (tags) => {
          tags[AWS.SERVICE] = service;
          tags[AWS.OPERATION] = operation;
          resourceTags(tags, cmd.input);
        },
        request: () => ({ service, operation, command }),
      });
      if (call?.recording) readLate(this, late);
      // `send(command, cb)` or `send(command, options, cb)` (smithy's Client.send picks the same one).
      const at = typeof args[1] === 'function' ? 1 : typeof args[2] === 'function' ? 2 : -1;
      if (at !== -1) {
        const callback = args[at] as (...a: unknown[]) => unknown;
        const traced = call;
        // Bound: the SDK calls it from its own promise chain, which runs underneath (silenced).
        args[at] = bindToCurrentContext(function (this: unknown, err: unknown, output: unknown) {
          if (traced !== undefined) settle(traced, late, err, output);
          return callback.apply(this, arguments as unknown as unknown[]);
        });
      }
    } catch (err) {
      logOnce('aws-sdk:start', 'could not start the span of an AWS SDK call; it goes on untraced', err);
      if (call !== undefined) call.finish();
      return original.apply(this, arguments as unknown as Parameters<Send>);
    }
    const traced = call;
    let run: { result: unknown; outer?: OuterClient };
    try {
      run = underneath(traced, () => original.apply(this, args as Parameters<Send>));
    } catch (err) {
      if (traced !== undefined) settle(traced, late, err, undefined);
      throw err;
    }
    // The SDK's own promise goes back to the caller; our reaction only records its outcome.
    if (traced !== undefined && run.result instanceof Promise) {
      const outer = run.outer;
      run.result.then(
        (output: unknown) => {
          if (outer !== undefined) outer.done = true;
          settle(traced, late, undefined, output);
        },
        (err: unknown) => {
          if (outer !== undefined) outer.done = true;
          settle(traced, late, err, undefined);
        },
      );
    }
    return run.result;
  };
}

function patchClass(module: SmithyClientModule | undefined): void {
  const proto = module?.Client?.prototype;
  if (proto === undefined || typeof proto.send !== 'function') throw new Error('unsupported Smithy client: no Client.prototype.send');
  wrapMethod(proto, 'send', tracedSend);
}

function unpatchClass(module: SmithyClientModule | undefined): void {
  const proto = module?.Client?.prototype;
  if (proto !== undefined) unwrapMethod(proto, 'send');
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
  patch(exports) {
    patchClass(clientModuleOf(exports));
  },
  unpatch(exports) {
    unpatchClass(clientModules.get(exports));
  },
};

/** `@smithy/smithy-client` (1.x to 4.x; 4.13+ re-exports the class of `@smithy/core/client`). */
export const smithyClient: Instrumentation<SmithyClientModule> = { name: COMPONENT, module: '@smithy/smithy-client', versions: '>=1 <5', patch: patchClass, unpatch: unpatchClass };

/** `@aws-sdk/smithy-client`: clients before 3.363 (same class, before the move to @smithy). */
export const awsSmithyClient: Instrumentation<SmithyClientModule> = { ...smithyClient, module: '@aws-sdk/smithy-client', versions: '>=3 <4' };
