/**
 * The registry of instrumented libraries: the single source of truth for
 * the patch names (`PatchName`), the option keys of `InstrumentationOptions`
 * and their types, and the list `register` reads its environment against.
 * Adding a library means adding its hook file in this folder and one entry
 * here.
 *
 * Each entry names the module(s) a patch hooks, the versions it supports and
 * how to load its hook file; the patcher loads a hook file only when its
 * module is in use (found loaded at install, or required later), so an
 * application without axios, pg or ioredis never loads their hooks (startup
 * cost of `-r register`).
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import type { Instrumentation } from '../instrumentation';
import type {
  AxiosOptions,
  FetchOptions,
  HttpClientOptions,
  HttpServerOptions,
  IoredisOptions,
  MysqlOptions,
  PatchOptions,
  PgOptions,
} from '../options';
import type { AwsSdkOptions } from './aws-sdk';
import type { RedisOptions } from './redis';
import type { AmqplibOptions } from './amqplib';
import type { BullmqOptions } from './bullmq';

/** One module a patch hooks, with its hook loaded on demand. */
export interface ModuleEntry {
  /** The module the hook patches: a package name or a Node builtin. */
  readonly module: string;
  /** Supported versions of `module` (semver range); omitted for builtins. */
  readonly versions?: string;
  /**
   * A file inside the package to hook instead of its main file, relative to
   * the package folder, with its extension (`lib/connection.js`); must match
   * the hook's own `file`.
   */
  readonly file?: string;
  /** Loads the hook file and returns the hook. */
  readonly load: () => Instrumentation<never>;
}

/** A patch: the modules it hooks; `Options` is the type of its options (type-level only). */
export interface PatchEntry<Options> {
  readonly modules: readonly ModuleEntry[];
  /** Never set: carries the options type for `OptionsByPatch`. */
  readonly options?: Options;
}

function patch<Options extends PatchOptions<never, never>>(...modules: ModuleEntry[]): PatchEntry<Options> {
  return { modules };
}

type Hook = Instrumentation<never>;

export const PATCHES = {
  http: patch<HttpClientOptions>({ module: 'http', load: () => (require('./http') as typeof import('./http')).httpClient as Hook }),
  https: patch<HttpClientOptions>({ module: 'https', load: () => (require('./http') as typeof import('./http')).httpsClient as Hook }),
  'http-server': patch<HttpServerOptions>(
    { module: 'http', load: () => (require('./http-server') as typeof import('./http-server')).httpServer as Hook },
    { module: 'https', load: () => (require('./http-server') as typeof import('./http-server')).httpsServer as Hook },
  ),
  axios: patch<AxiosOptions>({ module: 'axios', versions: '>=1.6.6 <2', load: () => (require('./axios') as typeof import('./axios')).axiosClient as Hook }),
  fetch: patch<FetchOptions>(
    { module: 'diagnostics_channel', load: () => (require('./fetch') as typeof import('./fetch')).fetchClient as Hook },
    { module: 'undici', versions: '>=6 <8', load: () => (require('./fetch') as typeof import('./fetch')).undiciDispatchers as Hook },
  ),
  pg: patch<PgOptions>(
    { module: 'pg', versions: '>=8 <9', load: () => (require('./pg') as typeof import('./pg')).pgClient as Hook },
    { module: 'pg-pool', versions: '>=3 <4', load: () => (require('./pg') as typeof import('./pg')).pgPool as Hook },
  ),
  redis: patch<RedisOptions>({ module: '@redis/client', versions: '>=1 <2 || >=5 <7', load: () => (require('./redis') as typeof import('./redis')).redisClient as Hook }),
  ioredis: patch<IoredisOptions>({ module: 'ioredis', versions: '>=4 <7', load: () => (require('./ioredis') as typeof import('./ioredis')).ioredis as Hook }),
  mysql2: patch<MysqlOptions>({ module: 'mysql2', versions: '>=3 <4', load: () => (require('./mysql2') as typeof import('./mysql2')).mysql2 as Hook }),
  mysql: patch<MysqlOptions>({ module: 'mysql', versions: '>=2 <3', load: () => (require('./mysql') as typeof import('./mysql')).mysql as Hook }),
  'aws-sdk': patch<AwsSdkOptions>(
    { module: '@smithy/core', versions: '>=3.24.0 <4', load: () => (require('./aws-sdk') as typeof import('./aws-sdk')).smithyCore as Hook },
    { module: '@smithy/smithy-client', versions: '>=1 <5', load: () => (require('./aws-sdk') as typeof import('./aws-sdk')).smithyClient as Hook },
    { module: '@aws-sdk/smithy-client', versions: '>=3 <4', load: () => (require('./aws-sdk') as typeof import('./aws-sdk')).awsSmithyClient as Hook },
  ),
  amqplib: patch<AmqplibOptions>(
    { module: 'amqplib', versions: '>=0.10.0 <0.11 || >=2 <3', load: () => (require('./amqplib') as typeof import('./amqplib')).amqplib as Hook },
    { module: 'amqplib/callback_api', versions: '>=0.10.0 <0.11 || >=2 <3', load: () => (require('./amqplib') as typeof import('./amqplib')).amqplibCallbackApi as Hook },
  ),
  bullmq: patch<BullmqOptions>({ module: 'bullmq', versions: '>=5 <7', load: () => (require('./bullmq') as typeof import('./bullmq')).bullmq as Hook }),
};

/** The libraries this package can instrument: the registry's keys. */
export type PatchName = keyof typeof PATCHES;

/** Per patch, the options interface that patch takes. */
export type OptionsByPatch = { [P in PatchName]: (typeof PATCHES)[P] extends PatchEntry<infer O> ? O : never };

/** Every patch name, in registry order. */
export const PATCH_NAMES = Object.keys(PATCHES) as readonly PatchName[];

/** One module of one patch, as the patcher tracks it. */
export interface Registration extends ModuleEntry {
  /** The patch name users enable it by. */
  readonly name: PatchName;
}

/** Every (patch, module) pair, flattened. */
export const instrumentations: ReadonlyArray<Registration> = PATCH_NAMES.flatMap((name) =>
  PATCHES[name].modules.map((entry) => ({ ...entry, name })),
);
