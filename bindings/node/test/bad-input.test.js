'use strict';
// Bad input is a rejected promise with a code, never a crash and never a
// silent coercion; a panic in Rust is an error too; and 10,000 calls in a
// loop leave memory flat.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const { PACKAGE_DIR, setUp, sha256 } = require('./helpers');

let env;
before(async () => {
  env = await setUp();
});
after(() => env.tearDown());

/** Expects `promise` to reject with an Error of `code` whose message says `says`. */
async function rejects(promise, code, says) {
  assert.ok(promise instanceof Promise, 'every cache call returns a promise');
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof Error, 'an Error');
    assert.equal(e.code, code, e.message);
    if (says) assert.match(e.message, says);
    return true;
  });
}

const HUGE = 'x'.repeat(10 * 1024 * 1024);
const NOT_IDS = ['12', -1, 0, 1.5, 2 ** 31, NaN, Infinity, -Infinity, null, undefined, true, {}, [], 12n, Symbol('id'), () => 12];
const NOT_STRINGS = [12, null, undefined, true, {}, ['payments'], 12n, Symbol('s'), () => 'payments'];

test('ids: wrong types, negative, zero, fractions and overflow are refused', async () => {
  const { permissionCache, sessionCache, invalidate } = env.cache;
  for (const bad of NOT_IDS) {
    await rejects(permissionCache.hasPagePermission(bad, 'STAFF', 'payments', 'list'), 'INVALID_ARGUMENT', /userId/);
    await rejects(permissionCache.getUserPermissionsWithFallback(bad, 'STAFF'), 'INVALID_ARGUMENT', /userId/);
    await rejects(permissionCache.invalidateUserPermissions(bad), 'INVALID_ARGUMENT', /userId/);
    await rejects(permissionCache.invalidateSuperAdminPermissions(bad), 'INVALID_ARGUMENT', /superAdminId/);
    await rejects(permissionCache.invalidateRolePermissions(bad), 'INVALID_ARGUMENT', /roleId/);
    await rejects(sessionCache.invalidateUserSessions(bad), 'INVALID_ARGUMENT', /userId/);
    await rejects(invalidate('USER_LOGGED_OUT', bad), 'INVALID_ARGUMENT', /`id`/);
  }
});

test('strings: wrong types, unknown names, keys outside the schema, huge strings', async () => {
  const { permissionCache } = env.cache;
  const staff = env.facts.users.staff.id;
  for (const bad of NOT_STRINGS) {
    await rejects(permissionCache.hasPagePermission(staff, bad, 'payments', 'list'), 'INVALID_ARGUMENT', /userType/);
    await rejects(permissionCache.hasPagePermission(staff, 'STAFF', bad, 'list'), 'INVALID_ARGUMENT', /module/);
    await rejects(permissionCache.hasPagePermission(staff, 'STAFF', 'payments', bad), 'INVALID_ARGUMENT', /page/);
    await rejects(permissionCache.hasModulePermission(staff, 'STAFF', bad), 'INVALID_ARGUMENT', /module/);
  }
  for (const bad of ['ROOT', 'staff', '', 'SUPER ADMIN', HUGE]) {
    await rejects(permissionCache.hasModulePermission(staff, bad, 'payments'), 'INVALID_ARGUMENT', /userType/);
  }
  for (const bad of ['Payments', '', '2fa', "payments'; DROP TABLE users;--", 'a'.repeat(64), 'pay\u0000ments', 'paymënts', HUGE]) {
    await rejects(permissionCache.hasPagePermission(staff, 'STAFF', bad, 'list'), 'INVALID_ARGUMENT', /module/);
    await rejects(permissionCache.hasPagePermission(staff, 'STAFF', 'payments', bad), 'INVALID_ARGUMENT', /page/);
  }
  for (const bad of ['fly', 'VIEW', '', HUGE, 3]) {
    await rejects(
      permissionCache.hasActionPermission(staff, 'STAFF', 'expenses', 'list', bad),
      'INVALID_ARGUMENT',
      /action/,
    );
  }
  await rejects(permissionCache.hasPagePermission(staff, 'STAFF', 'payments', HUGE), 'INVALID_ARGUMENT', /at most 4096/);
  // The users table still answers: nothing reached SQL.
  assert.equal((await env.db.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 5);
});

test('events: only the plan\'s five, spelled as the plan spells them', async () => {
  const { invalidate } = env.cache;
  const id = env.facts.users.staff.id;
  for (const bad of ['USER_DELETED', 'user_logged_out', '', ' USER_LOGGED_OUT', HUGE, 1, null, undefined, {}]) {
    await rejects(invalidate(bad, id), 'INVALID_ARGUMENT', /event/);
  }
  const report = await invalidate('USER_PERMISSIONS_CHANGED', id);
  assert.equal(report.event, 'USER_PERMISSIONS_CHANGED');
  assert.equal(report.id, id);
});

test('tokens and hashes', async () => {
  const { sessionCache } = env.cache;
  // A string that is no token names no session (as the service answers 401)...
  for (const notAToken of ['', 'abc', 'A'.repeat(64), 'g'.repeat(64), 'Bearer ' + 'a'.repeat(64)]) {
    assert.equal(await sessionCache.getSessionWithFallback(notAToken), null);
  }
  // ...but a non-string or a huge string is a mistake.
  for (const bad of [...NOT_STRINGS, HUGE]) {
    await rejects(sessionCache.getSessionWithFallback(bad), 'INVALID_ARGUMENT', /token/);
  }
  for (const bad of ['abc', 'A'.repeat(63), 12, null, HUGE]) {
    await rejects(sessionCache.setSessionForToken(bad), 'INVALID_ARGUMENT', /token/);
    await rejects(sessionCache.revokeSession(bad), 'INVALID_ARGUMENT', /token/);
    assert.throws(() => sessionCache.hashToken(bad), (e) => e.code === 'INVALID_ARGUMENT');
  }
  for (const bad of ['abc', 'z'.repeat(64), 'a'.repeat(65), 12, null, undefined, HUGE]) {
    await rejects(sessionCache.setSession(bad, { user_id: 1 }), 'INVALID_ARGUMENT', /tokenHash/);
  }
  const hash = 'a'.repeat(64);
  for (const bad of [12, 'x', [], true]) {
    await rejects(sessionCache.setSession(hash, bad), 'INVALID_ARGUMENT', /session/);
  }
  for (const bad of [{ user_id: '123' }, { user_id: -1 }, { expires_at: 'tomorrow' }, { expires_at: 5 }]) {
    await rejects(sessionCache.setSession(hash, bad), 'INVALID_ARGUMENT', /session\./);
  }
  // A well-formed hash that no session has: nothing is cached.
  assert.equal(await sessionCache.setSession(hash, { user_id: 1, expires_at: '2024-12-05T00:00:00Z' }), null);
  for (const bad of [{ exceptToken: 5 }, { exceptToken: 'abc' }, { except: 'a'.repeat(64) }, 'a'.repeat(64)]) {
    await rejects(sessionCache.invalidateUserSessions(1, bad), 'INVALID_ARGUMENT', /option/);
  }
  // The hash of another user's session is refused, not cached for the wrong user.
  const token = await env.serve.login(env.facts.users.staff.email);
  await rejects(
    sessionCache.setSession(sha256(token), { user_id: env.facts.users.manager.id }),
    'INVALID_ARGUMENT',
    /another user/,
  );
  assert.equal((await sessionCache.setSession(sha256(token), { user_id: env.facts.users.staff.id })).user_id, env.facts.users.staff.id);
  assert.equal(sessionCache.hashToken(token), sha256(token));
});

test('monitoring: only the stats section', async () => {
  for (const bad of ['memory', 'all', '', 5, null, HUGE]) {
    await rejects(env.cache.redis.info(bad), 'INVALID_ARGUMENT', /section/);
  }
  assert.match(await env.cache.redis.info(), /keyspace_hits:\d+/);
  assert.match(await env.cache.redis.info('STATS'), /keyspace_misses:\d+/);
});

test('configure after first use is refused, with its own code', () => {
  assert.throws(() => env.cache.configure({ redisUrl: 'memory' }), (e) => e.code === 'ALREADY_CONFIGURED');
});

test('a panic in Rust rejects the call (before, at and after its first await) and the process lives on', async () => {
  const file = process.env.BISMAN_CACHE_ADDON || path.join(PACKAGE_DIR, 'bisman-cache.node');
  const native = { exports: {} };
  process.dlopen(native, file);
  const call = (when) => Promise.resolve().then(() => native.exports.__panicForTests(when));
  for (const when of ['check', 'sync', 'async']) {
    await rejects(call(when), 'INTERNAL', /panic/);
  }
  // Many at once, on the runtime's threads.
  const all = await Promise.allSettled(Array.from({ length: 50 }, () => call('async')));
  assert.ok(all.every((r) => r.status === 'rejected' && r.reason.code === 'INTERNAL'));
  // The cache still answers.
  const { staff } = env.facts.users;
  assert.equal(await env.cache.permissionCache.hasPagePermission(staff.id, 'STAFF', 'expenses', 'list'), true);
});

test('10,000 calls in a loop leave memory flat', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const { permissionCache, sessionCache } = env.cache;
  const { staff, manager } = env.facts.users;
  const token = await env.serve.login(staff.email);
  const unknown = 'b'.repeat(64);

  // One round: 10,000 calls of every kind: near-cache hits, a session
  // lookup, answers of null, and refused arguments.
  async function round() {
    for (let i = 0; i < 10_000; i++) {
      switch (i % 5) {
        case 0:
          await permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list');
          break;
        case 1:
          await permissionCache.getUserPermissionsWithFallback(staff.id, 'STAFF');
          break;
        case 2:
          await sessionCache.getSessionWithFallback(token);
          break;
        case 3:
          await sessionCache.getSessionWithFallback(unknown);
          break;
        default:
          await permissionCache.hasPagePermission(-i, 'STAFF', 'payments', 'list').catch((e) => e.code);
      }
    }
  }
  const measure = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return { rss: m.rss, heap: m.heapUsed, external: m.external };
  };
  // Warm up: the allocator's arenas, the near-cache's entries, V8's code.
  await round();
  await round();
  const start = measure();
  const samples = [];
  for (let r = 0; r < 6; r++) {
    await round();
    samples.push(measure());
  }
  const mib = (bytes) => bytes / (1024 * 1024);
  const median = (k) => samples.slice(-3).map((m) => m[k]).sort((a, b) => a - b)[1];
  const grew = (k) => mib(median(k) - start[k]);
  const report = `over 60,000 calls: rss ${grew('rss').toFixed(1)} MiB, heap ${grew('heap').toFixed(1)} MiB, external ${grew('external').toFixed(1)} MiB`;
  t.diagnostic(report);
  // The JavaScript side is exact; the process's resident memory moves with
  // the allocator, so it gets a margin (the median of the last rounds
  // against the first): a leak of 200 bytes a call would cross it.
  assert.ok(grew('heap') < 1, report);
  assert.ok(grew('external') < 1, report);
  assert.ok(grew('rss') < 8, report);
});
