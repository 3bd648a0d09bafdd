/**
 * vp-bridge: tell the vp task runner what your tool really reads, writes and
 * depends on, so vp caches its runs correctly.
 *
 * Under `vp run` every call reaches the runner before it returns (a tool may
 * exit right after). Outside vp, `ignoreInput`, `ignoreOutput` and
 * `disableCache` do nothing, and `getEnv`/`getEnvs` read `process.env`, so a
 * tool behaves the same with or without vp. Errors reported by the runner
 * are thrown as `Error`s whose message starts with `vp-bridge:`.
 */

/** Options of the env functions. */
export interface EnvOptions {
  /**
   * Whether the value(s) become part of the cache entry: when they change,
   * the next run is a cache miss. Defaults to `true`. Names the user lists
   * as untracked in vp's config are never tracked, whatever this says.
   */
  tracked?: boolean;
}

/** A `getEnvs` query selecting every variable whose name starts with `prefix`. */
export interface PrefixQuery {
  prefix: string;
}

/**
 * Reads under `path` (the whole subtree) are not inputs of this task: e.g. a
 * cache directory the tool manages itself. Relative paths are resolved
 * against the current directory.
 */
export function ignoreInput(path: string): void;

/**
 * Writes under `path` (the whole subtree) are not outputs of this task: they
 * are not archived or restored. Relative paths are resolved against the
 * current directory.
 */
export function ignoreOutput(path: string): void;

/** This run must not be stored in vp's cache (e.g. a dev server). */
export function disableCache(): void;

/**
 * Reads one variable from vp's own environment (which may hold variables
 * vp does not pass to tasks). Returns `undefined` when it is not set.
 */
export function getEnv(name: string, options?: EnvOptions): string | undefined;

/**
 * Reads every variable whose name matches `query` from vp's own
 * environment: a glob over the whole name (`"VITE_*"`, `"{VITE,PUBLIC}_*"`)
 * or `{ prefix: "VITE_" }`. With `tracked` (the default) the whole
 * match-set is part of the cache entry: an added, removed or changed
 * variable is a miss. Variables vp passes through untracked (PATH, HOME,
 * CI, ... and the config's `untrackedEnv`) are never in the result under vp;
 * they are in `process.env` already.
 */
export function getEnvs(query: string | PrefixQuery, options?: EnvOptions): Record<string, string>;

declare const bridge: {
  ignoreInput: typeof ignoreInput;
  ignoreOutput: typeof ignoreOutput;
  disableCache: typeof disableCache;
  getEnv: typeof getEnv;
  getEnvs: typeof getEnvs;
};
export default bridge;
