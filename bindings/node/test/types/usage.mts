// Type-checked (never run) by test/modules.test.js: the ES module entry's
// types cover the plan's snippets and the package's additions.
import cache, {
  permissionCache,
  sessionCache,
  invalidate,
  redis,
  configure,
  close,
  stats,
  health,
  EVENTS,
  type CacheError,
  type Permissions,
  type Session,
} from '@bisman/cache';

export async function plan(tokenHash: string, token: string, userId: number, superAdminId: number) {
  configure({ databaseUrl: 'postgres://db/erp', redisUrl: 'redis://127.0.0.1:6379', permissionsTtl: '5m', nearCacheLease: 1500 });
  const stored: Session | null = await sessionCache.setSession(tokenHash, { user_id: 123, expires_at: '2024-12-05T00:00:00Z' });
  const session: Session | null = await sessionCache.getSessionWithFallback(token);
  const ended: number = await sessionCache.invalidateUserSessions(userId, { exceptToken: token });
  const perms: Permissions | null = await permissionCache.getUserPermissionsWithFallback(userId, 'MANAGER');
  const actions: string[] | undefined = perms?.modules['payments']?.['list'];
  const hasAccess: boolean = await permissionCache.hasModulePermission(userId, 'STAFF', 'payments');
  const canView: boolean = await permissionCache.hasPagePermission(userId, 'STAFF', 'payments', 'list');
  const canApprove: boolean = await cache.permissionCache.hasActionPermission(userId, 'ADMIN', 'expenses', 'approvals', 'approve');
  const delivery = await permissionCache.invalidateUserPermissions(userId);
  const acked: number = delivery.acknowledged;
  await permissionCache.invalidateSuperAdminPermissions(superAdminId);
  const report = await invalidate(EVENTS.USER_LOGGED_OUT, userId);
  const ended2: number = report.sessions_ended;
  await invalidate('MODULE_ASSIGNMENTS_CHANGED', superAdminId);
  const info: string = await redis.info('stats');
  const hits: number = (await redis.stats()).keyspace_hits;
  const rows = await stats();
  const usable: boolean = (await health()).near_usable;
  const hash: string = sessionCache.hashToken(token);
  try {
    await close();
  } catch (e) {
    const code: CacheError['code'] = (e as CacheError).code;
    return code;
  }
  return { stored, session, ended, actions, hasAccess, canView, canApprove, acked, ended2, info, hits, rows, usable, hash };
}

export async function misuse() {
  // @ts-expect-error ids are numbers
  await permissionCache.hasPagePermission('12', 'STAFF', 'payments', 'list');
  // @ts-expect-error user types are the ERP's four
  await permissionCache.hasModulePermission(12, 'ROOT', 'payments');
  // @ts-expect-error events are the plan's five
  await invalidate('USER_DELETED', 12);
  // @ts-expect-error unknown options are refused
  configure({ redisURL: 'memory' });
  // @ts-expect-error hashToken is synchronous
  await sessionCache.hashToken('x').then(() => 0);
  // @ts-expect-error actions are view, create, edit, delete, approve
  await permissionCache.hasActionPermission(1, 'STAFF', 'payments', 'list', 'fly');
}
