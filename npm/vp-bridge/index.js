'use strict';
// vp-bridge: the JS face of vp's runner bridge. The native part is not in
// this package: the running `vp` provides its own addon (same version as
// the runner, so protocol and addon never drift) through
// VP_RUN_NODE_CLIENT_PATH. Without it (not under vp) ignore/disable calls
// do nothing and getEnv/getEnvs read process.env, so a tool behaves the
// same with or without vp.

const ADDON_ENV = 'VP_RUN_NODE_CLIENT_PATH';

let addon; // undefined: not loaded yet; null: not under vp

function runner() {
  if (addon !== undefined) return addon;
  const path = process.env[ADDON_ENV];
  if (!path) {
    addon = null;
    return addon;
  }
  try {
    addon = require(path).load();
  } catch (err) {
    // Under vp with a broken addon: say so instead of silently dropping
    // reports the cache relies on.
    const wrapped = new Error(
      `vp-bridge: cannot load the vp runner's addon from ${ADDON_ENV}=${path}: ${err && err.message}`,
    );
    wrapped.cause = err;
    throw wrapped;
  }
  return addon;
}

function checkPath(path) {
  if (typeof path !== 'string' || path === '') {
    throw new TypeError('vp-bridge: path must be a non-empty string');
  }
}

function tracked(options) {
  if (options === undefined || options === null) return true;
  if (typeof options !== 'object') {
    throw new TypeError('vp-bridge: options must be an object like { tracked: false }');
  }
  if (options.tracked === undefined) return true;
  if (typeof options.tracked !== 'boolean') {
    throw new TypeError('vp-bridge: options.tracked must be a boolean');
  }
  return options.tracked;
}

function ignoreInput(path) {
  checkPath(path);
  const api = runner();
  if (api) api.ignoreInput(path);
}

function ignoreOutput(path) {
  checkPath(path);
  const api = runner();
  if (api) api.ignoreOutput(path);
}

function disableCache() {
  const api = runner();
  if (api) api.disableCache();
}

function getEnv(name, options) {
  if (typeof name !== 'string') throw new TypeError('vp-bridge: getEnv expects a variable name');
  const isTracked = tracked(options);
  const api = runner();
  if (api) return api.getEnv(name, { tracked: isTracked });
  return Object.prototype.hasOwnProperty.call(process.env, name) ? process.env[name] : undefined;
}

function getEnvs(query, options) {
  const isTracked = tracked(options);
  checkQuery(query);
  const api = runner();
  // Under vp the runner matches (and validates) the glob itself.
  if (api) return api.getEnvs(query, { tracked: isTracked });
  const select = selector(query);
  const out = {};
  for (const name of Object.keys(process.env)) {
    if (select(name)) out[name] = process.env[name];
  }
  return out;
}

function checkQuery(query) {
  const ok =
    typeof query === 'string' || (query !== null && typeof query === 'object' && typeof query.prefix === 'string');
  if (!ok) throw new TypeError('vp-bridge: getEnvs expects a glob string or { prefix: string }');
}

function selector(query) {
  if (typeof query === 'string') {
    let re;
    try {
      re = globToRegExp(query);
    } catch (err) {
      throw new Error(`vp-bridge: invalid env glob \`${query}\`: ${err.message}`);
    }
    return (name) => re.test(name);
  }
  const prefix = query.prefix;
  return (name) => name.startsWith(prefix);
}

// Same rules as the runner: `*`, `?`, `[a-z]`/`[!a-z]`, `{a,b}`, `\` escapes;
// the glob matches the whole name.
function globToRegExp(glob) {
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '\\' && i + 1 < glob.length) {
      re += escape(glob[++i]);
    } else if (c === '*') {
      re += '[\\s\\S]*';
    } else if (c === '?') {
      re += '[\\s\\S]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, close);
      const negated = body[0] === '!' || body[0] === '^';
      if (negated) body = body.slice(1);
      re += `[${negated ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = close;
    } else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) {
      re += '|';
    } else {
      re += escape(c);
    }
  }
  return new RegExp(`^${re}$`);
}

function escape(c) {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

module.exports = { ignoreInput, ignoreOutput, disableCache, getEnv, getEnvs };
