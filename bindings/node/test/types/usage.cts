// Type-checked (never run) by test/modules.test.js: the CommonJS entry's types.
import cache = require('@bisman/cache');
import { permissionCache } from '@bisman/cache';

export async function check(userId: number): Promise<boolean> {
  const viaNamespace: boolean = await cache.permissionCache.hasPagePermission(userId, 'STAFF', 'payments', 'list');
  const direct: boolean = await permissionCache.hasPagePermission(userId, 'STAFF', 'payments', 'list');
  return viaNamespace && direct;
}
