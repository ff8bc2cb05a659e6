/**
 * The shape every hook file exports (one object per module it patches), in
 * its own file so that the registry (src/hooks/index.ts), the patcher and
 * the hooks all import it without an import circle.
 */

/**
 * One instrumented module. A library may need several (pg: `pg` and
 * `pg-pool`); each hook file exports them and `src/hooks/index.ts` lists
 * them under their patch name.
 */
export interface Instrumentation<Exports = unknown> {
  /** The patch name users enable it by (a key of the registry). */
  readonly name: string;
  /** The module whose exports `patch` receives: a package name or a Node builtin. */
  readonly module: string;
  /**
   * The versions of `module` this hook supports, as a semver range
   * (`>=8 <9`); a copy outside it is left unpatched with one diagnostic line.
   * Omitted for Node builtins.
   */
  readonly versions?: string;
  /**
   * A file inside the package to patch instead of its main file
   * (`lib/connection.js`), for libraries whose classes are not reachable
   * from the main exports. Omitted: the main file.
   */
  readonly file?: string;
  /** Wraps what it needs in `exports`. May throw: the registry contains it. */
  patch(exports: Exports): void;
  /** Puts back exactly what `patch` replaced. */
  unpatch(exports: Exports): void;
}
