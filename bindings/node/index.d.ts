// Types of @bisman/cache: the plan's JavaScript API (docs/P3_SCALING_SEED.md
// §4) over Bisman's Rust caches. Every function that reaches the cache
// returns a Promise; every error is an `Error` with a `code` (CacheError).

/** The ERP's user types (`users.user_type`). */
export type UserType = 'SUPER_ADMIN' | 'ADMIN' | 'MANAGER' | 'STAFF';

/** An action on a page (`role_permissions.actions`). */
export type Action = 'view' | 'create' | 'edit' | 'delete' | 'approve';

/** The plan's invalidation events. */
export type InvalidationEvent =
  | 'USER_PERMISSIONS_CHANGED'
  | 'MODULE_ASSIGNMENTS_CHANGED'
  | 'USER_LOGGED_OUT'
  | 'USER_PASSWORD_CHANGED'
  | 'SUPER_ADMIN_DEACTIVATED';

/** The stable codes of the package's errors. */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CONFIG_INVALID'
  | 'ALREADY_CONFIGURED'
  | 'CACHE_CLOSED'
  | 'CACHE_UNAVAILABLE'
  | 'NOT_SUPPORTED'
  | 'INTERNAL'
  | 'ADDON_NOT_BUILT';

/** What every rejected promise (and thrown error) of the package is. */
export interface CacheError extends Error {
  code: ErrorCode;
}

/** A live session. Times are ISO 8601 strings in UTC. */
export interface Session {
  session_id: number;
  tenant_id: string;
  user_id: number;
  user_type: UserType;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
}

/** What the plan's `setSession` is given; the session row decides, these are checked. */
export interface SessionClaim {
  /** Must be the user of the session with this hash. */
  user_id?: number;
  /** Must be an ISO 8601 date-time; the row's own expiry is the one that counts. */
  expires_at?: string;
}

/** A user's effective permissions: the body of `GET /api/v1/me/permissions`. */
export interface Permissions {
  user_id: number;
  tenant_id: string;
  user_type: UserType;
  /** Module key → page key → allowed actions. */
  modules: Record<string, Record<string, Action[]>>;
}

/** How an invalidation reached the other instances. */
export interface Delivery {
  /** Instances that acknowledged. */
  acknowledged: number;
  /** Instances that did not in time (they stopped serving from their near-cache when their lease ran out). */
  unacknowledged: number;
  /** Whether the call waited a lease instead of acknowledgements. */
  waited_out: boolean;
}

/** What `invalidate(event, id)` did. */
export interface InvalidationReport {
  event: InvalidationEvent;
  id: number;
  /** Sessions ended in PostgreSQL. */
  sessions_ended: number;
  deliveries: Delivery[];
}

/** The shared store's own counters (Redis `INFO stats`). */
export interface ServerStats {
  keyspace_hits: number;
  keyspace_misses: number;
}

/** The cache's counters for one namespace and layer. */
export interface StatsRow {
  namespace: 'sessions' | 'refresh_tokens' | 'user_permissions' | 'role_permissions' | 'module_assignments';
  layer: 'l1' | 'l2' | 'source';
  hits: number;
  misses: number;
  fills: number;
  invalidations: number;
  errors: number;
}

/** Whether each part answers. */
export interface Health {
  mode: 'redis' | 'redis-cluster' | 'memory' | 'postgres' | 'disabled';
  /** The shared store answers (null without one). */
  store_ok: boolean | null;
  near_enabled: boolean;
  /** The near-cache may serve now (its subscription is confirmed). */
  near_usable: boolean;
}

/** A duration: milliseconds, or a string like '500ms', '30s', '5m', '6h', '1d'. */
export type Duration = number | string;

/** `configure()` options; each stands for the environment variable named beside it. */
export interface Options {
  /** DATABASE_URL: the ERP's PostgreSQL (required). */
  databaseUrl?: string;
  /** BISMAN_DB_POOL_SIZE (16). */
  dbPoolSize?: number;
  /** REDIS_URL: redis://…, rediss://…, redis+cluster://h:p,h:p, memory, postgres or disabled (memory). */
  redisUrl?: string;
  /** BISMAN_CACHE_PREFIX ('bisman:'): must match the services sharing the store. */
  cachePrefix?: string;
  /** BISMAN_SESSION_TTL ('1h'). */
  sessionTtl?: Duration;
  /** BISMAN_REFRESH_TTL ('7d'). */
  refreshTtl?: Duration;
  /** BISMAN_SESSION_MAX_LIFETIME ('7d'). */
  sessionMaxLifetime?: Duration;
  /** BISMAN_PERMISSIONS_TTL ('5m'). */
  permissionsTtl?: Duration;
  /** BISMAN_ROLE_PERMISSIONS_TTL ('10m'). */
  rolePermissionsTtl?: Duration;
  /** BISMAN_MODULE_ASSIGNMENTS_TTL ('15m'). */
  moduleAssignmentsTtl?: Duration;
  /** BISMAN_NEAR_CACHE (true). */
  nearCache?: boolean;
  /** BISMAN_NEAR_CACHE_CAPACITY (100000). */
  nearCacheCapacity?: number;
  /** BISMAN_NEAR_CACHE_TTL ('10s'). */
  nearCacheTtl?: Duration;
  /** BISMAN_NEAR_CACHE_LEASE ('1500ms'). */
  nearCacheLease?: Duration;
  /** BISMAN_CACHE_TIMEOUT ('500ms'). */
  cacheTimeout?: Duration;
}

export interface SessionCache {
  /** The plan's call: caches the live session `user_sessions` holds for
   * `tokenHash` (SHA-256 of the token, 64 hex digits; see hashToken), whose
   * user must be `session.user_id`. The session, or null when none is live.
   * Safer: setSessionForToken(token). */
  setSession(tokenHash: string, session: SessionClaim): Promise<Session | null>;
  /** The live session of a token, or null (also for a string that is no token). */
  getSessionWithFallback(token: string): Promise<Session | null>;
  /** Ends every session of the user (but the one of `exceptToken`); how many ended. */
  invalidateUserSessions(userId: number, options?: { exceptToken?: string }): Promise<number>;
  /** setSession for a caller holding the token itself: the package hashes it. */
  setSessionForToken(token: string): Promise<Session | null>;
  /** Logs one session out everywhere: its user's id, or null when it was not live. */
  revokeSession(token: string): Promise<number | null>;
  /** The SHA-256 of a token as `user_sessions.token_hash` holds it. */
  hashToken(token: string): string;
}

export interface PermissionCache {
  /** The user's effective permissions, or null for an unknown user. `userType`
   * is what the caller believes; the database decides. */
  getUserPermissionsWithFallback(userId: number, userType: UserType): Promise<Permissions | null>;
  /** Whether any page of `module` is allowed. */
  hasModulePermission(userId: number, userType: UserType, module: string): Promise<boolean>;
  /** Whether any action on `page` of `module` is allowed. */
  hasPagePermission(userId: number, userType: UserType, module: string, page: string): Promise<boolean>;
  /** Whether `action` on `page` of `module` is allowed (what `GET /api/v1/permissions/check` answers). */
  hasActionPermission(
    userId: number,
    userType: UserType,
    module: string,
    page: string,
    action: Action,
  ): Promise<boolean>;
  /** After the user's roles changed (committed): resolves once no instance serves the old permissions. */
  invalidateUserPermissions(userId: number): Promise<Delivery>;
  /** After a super admin's modules or status changed (committed): reaches every user under them. */
  invalidateSuperAdminPermissions(superAdminId: number): Promise<Delivery>;
  /** After a role's page permissions changed (committed): reaches every user holding it. */
  invalidateRolePermissions(roleId: number): Promise<Delivery>;
}

export interface RedisMonitoring {
  /** The shared store's keyspace_hits and keyspace_misses as Redis `INFO stats` text. */
  info(section?: 'stats'): Promise<string>;
  /** The same counters as an object. */
  stats(): Promise<ServerStats>;
}

export declare const sessionCache: SessionCache;
export declare const permissionCache: PermissionCache;
export declare const redis: RedisMonitoring;
/** Applies one of the plan's events after the change committed; resolves
 * once no instance (Node.js or `bisman serve`) serves what it revoked. */
export declare function invalidate(event: InvalidationEvent, id: number): Promise<InvalidationReport>;
/** Configures the cache before its first use (otherwise the environment does). */
export declare function configure(options?: Options): void;
/** Leaves the invalidation bus and closes the pool; later calls fail with CACHE_CLOSED until configure(). */
export declare function close(): Promise<void>;
/** Hits, misses, fills, invalidations and errors per namespace and layer. */
export declare function stats(): Promise<StatsRow[]>;
/** Whether the store answers and the near-cache may serve. */
export declare function health(): Promise<Health>;
/** The plan's invalidation events, by name. */
export declare const EVENTS: { readonly [E in InvalidationEvent]: E };

