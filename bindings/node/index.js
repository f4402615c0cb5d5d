'use strict';
// @bisman/cache: Bisman's session and permission caches in the ERP backend's
// own process, with the plan's JavaScript API (docs/P3_SCALING_SEED.md §4).
//
// Everything here is plumbing: the checks, the caches and the invalidation
// bus are the Rust ones (src/). Each function is `async` so that every error,
// including an argument the native side refuses synchronously, arrives as a
// rejected promise. A near-cache hit is answered by the native call itself,
// so awaiting it costs one microtask, not a thread hop.

const path = require('node:path');

/** Loads the native addon built by `npm run build` (or the file named by
 * BISMAN_CACHE_ADDON, for builds made elsewhere). */
function loadNative() {
  const file = process.env.BISMAN_CACHE_ADDON || path.join(__dirname, 'bisman-cache.node');
  const mod = { exports: {} };
  try {
    process.dlopen(mod, file);
  } catch (cause) {
    const err = new Error(
      `@bisman/cache: cannot load the native addon ${file}; build it with \`npm run build\` ` +
        `(needs Rust and cargo): ${cause.message}`,
      { cause },
    );
    err.code = 'ADDON_NOT_BUILT';
    throw err;
  }
  return mod.exports;
}

const native = loadNative();

/** The values of the environment variables the package reads, from Node's
 * own `process.env`. */
function environment() {
  const out = {};
  for (const name of native.environmentVariables()) {
    const value = process.env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

let environmentGiven = false;
function ensureEnvironment() {
  if (!environmentGiven) {
    native.provideEnvironment(environment());
    environmentGiven = true;
  }
}

/**
 * Configures the cache before its first use (optional: without it the
 * environment variables `bisman serve` reads configure it). Options win
 * over the variables; see the README's table. Throws an Error with code
 * INVALID_ARGUMENT, CONFIG_INVALID or ALREADY_CONFIGURED.
 */
function configure(options) {
  native.configure(options, environment());
  environmentGiven = true;
}

/** Leaves the invalidation bus and closes the database pool. Later calls
 * fail with CACHE_CLOSED until configure() is called again. */
async function close() {
  await native.close();
}

const sessionCache = Object.freeze({
  /** Caches the live session `user_sessions` holds for `tokenHash` (the
   * SHA-256 of the token, hex); `session.user_id` must be its user. The
   * session, or null. Safer: setSessionForToken(token). */
  async setSession(tokenHash, session) {
    ensureEnvironment();
    return native.setSession(tokenHash, session);
  },
  /** The live session of a token (near-cache, shared store, PostgreSQL), or null. */
  async getSessionWithFallback(token) {
    ensureEnvironment();
    return native.getSessionWithFallback(token);
  },
  /** Ends every session of the user (except the one of options.exceptToken);
   * how many ended. */
  async invalidateUserSessions(userId, options) {
    ensureEnvironment();
    return native.invalidateUserSessions(userId, options);
  },
  /** setSession for a caller holding the token: the package hashes it. */
  async setSessionForToken(token) {
    ensureEnvironment();
    return native.setSessionForToken(token);
  },
  /** Logs one session out everywhere; its user's id, or null when it was not live. */
  async revokeSession(token) {
    ensureEnvironment();
    return native.revokeSession(token);
  },
  /** The SHA-256 of a token as user_sessions.token_hash holds it (synchronous). */
  hashToken(token) {
    return native.hashToken(token);
  },
});

const permissionCache = Object.freeze({
  /** The user's effective permissions ({ user_id, tenant_id, user_type,
   * modules: { module: { page: [actions] } } }), or null. */
  async getUserPermissionsWithFallback(userId, userType) {
    ensureEnvironment();
    return native.getUserPermissionsWithFallback(userId, userType);
  },
  /** Whether any page of `module` is allowed. */
  async hasModulePermission(userId, userType, module) {
    ensureEnvironment();
    return native.hasModulePermission(userId, userType, module);
  },
  /** Whether any action on `page` of `module` is allowed. */
  async hasPagePermission(userId, userType, module, page) {
    ensureEnvironment();
    return native.hasPagePermission(userId, userType, module, page);
  },
  /** Whether `action` on `page` of `module` is allowed. */
  async hasActionPermission(userId, userType, module, page, action) {
    ensureEnvironment();
    return native.hasActionPermission(userId, userType, module, page, action);
  },
  /** After the user's roles changed (committed). */
  async invalidateUserPermissions(userId) {
    ensureEnvironment();
    return native.invalidateUserPermissions(userId);
  },
  /** After a super admin's modules or status changed (committed). */
  async invalidateSuperAdminPermissions(superAdminId) {
    ensureEnvironment();
    return native.invalidateSuperAdminPermissions(superAdminId);
  },
  /** After a role's page permissions changed (committed). */
  async invalidateRolePermissions(roleId) {
    ensureEnvironment();
    return native.invalidateRolePermissions(roleId);
  },
});

/** Applies one of the plan's events after the change committed; resolves
 * once no instance (Node or `bisman serve`) serves what it revoked. */
async function invalidate(event, id) {
  ensureEnvironment();
  return native.invalidate(event, id);
}

const redis = Object.freeze({
  /** The shared store's keyspace_hits / keyspace_misses as INFO stats text. */
  async info(section) {
    ensureEnvironment();
    return native.redisInfo(section);
  },
  /** The same counters as { keyspace_hits, keyspace_misses }. */
  async stats() {
    ensureEnvironment();
    return native.redisStats();
  },
});

/** Hits, misses, fills, invalidations and errors per namespace and layer. */
async function stats() {
  ensureEnvironment();
  return native.stats();
}

/** Whether the store answers and the near-cache may serve. */
async function health() {
  ensureEnvironment();
  return native.health();
}

/** The plan's invalidation events. */
const EVENTS = Object.freeze({
  USER_PERMISSIONS_CHANGED: 'USER_PERMISSIONS_CHANGED',
  MODULE_ASSIGNMENTS_CHANGED: 'MODULE_ASSIGNMENTS_CHANGED',
  USER_LOGGED_OUT: 'USER_LOGGED_OUT',
  USER_PASSWORD_CHANGED: 'USER_PASSWORD_CHANGED',
  SUPER_ADMIN_DEACTIVATED: 'SUPER_ADMIN_DEACTIVATED',
});

module.exports = {
  sessionCache,
  permissionCache,
  invalidate,
  redis,
  configure,
  close,
  stats,
  health,
  EVENTS,
};
