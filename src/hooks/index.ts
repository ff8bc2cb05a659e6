/**
 * The registry of instrumented modules. Adding a library means adding its
 * file in this folder and its entries here.
 *
 * Each entry names its patch and module and says how to load its hook file;
 * the registry loads a hook file only when its module is in use (found
 * loaded at install, or required later), so an application without axios,
 * pg or ioredis never loads their hooks (startup cost of `-r register`).
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import type { PatchName } from '../options';
import type { Instrumentation } from '../patcher';

/** One instrumented module, with its hook file loaded on demand. */
export interface Registration {
  /** The patch name users enable it by (the hook's own `name`). */
  readonly name: PatchName;
  /** The module the hook patches (the hook's own `module`). */
  readonly module: string;
  /** Loads the hook file and returns the hook. */
  readonly load: () => Instrumentation<never>;
}

type Hook = Instrumentation<never>;

export const instrumentations: ReadonlyArray<Registration> = [
  { name: 'http', module: 'http', load: () => (require('./http') as typeof import('./http')).httpClient as Hook },
  { name: 'https', module: 'https', load: () => (require('./http') as typeof import('./http')).httpsClient as Hook },
  { name: 'http-server', module: 'http', load: () => (require('./http-server') as typeof import('./http-server')).httpServer as Hook },
  { name: 'http-server', module: 'https', load: () => (require('./http-server') as typeof import('./http-server')).httpsServer as Hook },
  { name: 'axios', module: 'axios', load: () => (require('./axios') as typeof import('./axios')).axiosClient as Hook },
  { name: 'fetch', module: 'diagnostics_channel', load: () => (require('./fetch') as typeof import('./fetch')).fetchClient as Hook },
  { name: 'fetch', module: 'undici', load: () => (require('./fetch') as typeof import('./fetch')).undiciDispatchers as Hook },
  { name: 'pg', module: 'pg', load: () => (require('./pg') as typeof import('./pg')).pgClient as Hook },
  { name: 'pg', module: 'pg-pool', load: () => (require('./pg') as typeof import('./pg')).pgPool as Hook },
  { name: 'ioredis', module: 'ioredis', load: () => (require('./ioredis') as typeof import('./ioredis')).ioredis as Hook },
];
