'use strict';
// A revoked grant is never served once the revoking call returns, across
// runtimes: a revocation made through the package is refused by a running
// `bisman serve`, and one made through the service's HTTP API is refused by
// the package, both with their near-caches warm. Permissions, module
// assignments, logout and password change; over Redis and over PostgreSQL
// (the permission_cache table with LISTEN/NOTIFY).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { addUser, bismanBin, nearHits, redisUrl, setUp, sha256 } = require('./helpers');

/** Waits until the package's near-cache may serve (its subscription is confirmed). */
async function nearUsable(cache) {
  for (let i = 0; i < 500; i++) {
    if ((await cache.health()).near_usable) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail('the near-cache subscription never came up');
}

/** Asks the package twice and checks that the second answer came from its
 * near-cache (sessions compared without their sliding last_seen_at). */
async function warmInNode(cache, namespace, ask) {
  const stable = (v) => (v && typeof v === 'object' ? { ...v, last_seen_at: undefined } : v);
  const first = await ask();
  const hits = await nearHits(cache, namespace);
  assert.deepEqual(stable(await ask()), stable(first));
  assert.ok((await nearHits(cache, namespace)) > hits, `${namespace}: the second answer is a near-cache hit`);
  return first;
}

for (const mode of ['redis', 'postgres']) {
  describe(`over ${mode}`, () => {
    let env;
    before(async () => {
      env = await setUp({ redis: mode === 'redis' ? redisUrl() : 'postgres' });
      await nearUsable(env.cache);
    });
    after(() => env.tearDown());

    const user = (email) => addUser(env.db.pool, env.facts.users.staff, `${email}.${mode}@demo.test`);

    test('Node revokes a role: the service refuses the page once the call returned', async () => {
      const { serve, cache, db } = env;
      const u = await user('role-node');
      const token = await serve.login(u.email);
      assert.equal(await serve.allowed(token, 'expenses', 'list'), true);
      assert.equal(await serve.allowed(token, 'expenses', 'list'), true);
      await warmInNode(cache, 'user_permissions', () =>
        cache.permissionCache.hasPagePermission(u.id, 'STAFF', 'expenses', 'list'));

      await db.pool.query('DELETE FROM user_roles WHERE user_id = $1', [u.id]);
      await cache.permissionCache.invalidateUserPermissions(u.id);

      assert.equal(await serve.allowed(token, 'expenses', 'list'), false);
      assert.equal(await cache.permissionCache.hasPagePermission(u.id, 'STAFF', 'expenses', 'list'), false);
    });

    test('Node unassigns a module: the service refuses it to every user under the super admin', async () => {
      const { serve, cache, db, facts } = env;
      const manager = facts.users.manager;
      const token = await serve.login(manager.email);
      assert.equal(await serve.allowed(token, 'reports', 'finance'), true);
      await warmInNode(cache, 'user_permissions', () =>
        cache.permissionCache.hasModulePermission(manager.id, 'MANAGER', 'reports'));

      const reports = `(SELECT id FROM modules WHERE key = 'reports')`;
      await db.pool.query(`DELETE FROM super_admin_modules WHERE super_admin_id = $1 AND module_id = ${reports}`, [
        facts.superAdminId,
      ]);
      await cache.invalidate('MODULE_ASSIGNMENTS_CHANGED', facts.superAdminId);

      assert.equal(await serve.allowed(token, 'reports', 'finance'), false);
      assert.equal(await cache.permissionCache.hasModulePermission(manager.id, 'MANAGER', 'reports'), false);

      await db.pool.query(`INSERT INTO super_admin_modules (super_admin_id, module_id) SELECT $1, ${reports}`, [
        facts.superAdminId,
      ]);
      await cache.permissionCache.invalidateSuperAdminPermissions(facts.superAdminId);
      assert.equal(await serve.allowed(token, 'reports', 'finance'), true);
    });

    test('Node logs a session out (revokeSession, and the plan\'s SQL + USER_LOGGED_OUT): the service refuses the token', async () => {
      const { serve, cache, db } = env;
      const u = await user('logout-node');
      const [a, b, c] = [await serve.login(u.email), await serve.login(u.email), await serve.login(u.email)];
      for (const t of [a, b, c]) {
        assert.equal((await serve.call('GET', '/me/permissions', t)).status, 200);
        await warmInNode(cache, 'sessions', () => cache.sessionCache.getSessionWithFallback(t));
      }

      assert.equal(await cache.sessionCache.revokeSession(a), u.id);
      assert.equal((await serve.call('GET', '/me/permissions', a)).status, 401);
      assert.equal(await cache.sessionCache.getSessionWithFallback(a), null);
      assert.equal(await cache.sessionCache.revokeSession(a), null, 'already logged out');

      // The plan's way: the ERP revokes the row, then tells the caches.
      await db.pool.query('UPDATE user_sessions SET revoked_at = now(), is_active = false WHERE token_hash = $1', [
        sha256(b),
      ]);
      await cache.invalidate('USER_LOGGED_OUT', u.id);
      assert.equal((await serve.call('GET', '/me/permissions', b)).status, 401);
      assert.equal(await cache.sessionCache.getSessionWithFallback(b), null);

      // Only those two: the third session lives on in both runtimes.
      assert.equal((await serve.call('GET', '/me/permissions', c)).status, 200);
      assert.equal((await cache.sessionCache.getSessionWithFallback(c)).user_id, u.id);
    });

    test('Node records a password change: every session of the user is refused by the service', async () => {
      const { serve, cache, db } = env;
      const u = await user('password-node');
      const tokens = [await serve.login(u.email), await serve.login(u.email)];
      for (const t of tokens) {
        assert.equal((await serve.call('GET', '/me/permissions', t)).status, 200);
        await warmInNode(cache, 'sessions', () => cache.sessionCache.getSessionWithFallback(t));
      }

      await db.pool.query("UPDATE users SET password_hash = 'changed-by-the-erp', password_changed_at = now() WHERE id = $1", [
        u.id,
      ]);
      const report = await cache.invalidate('USER_PASSWORD_CHANGED', u.id);
      assert.equal(report.sessions_ended, 2);

      for (const t of tokens) {
        assert.equal((await serve.call('GET', '/me/permissions', t)).status, 401);
        assert.equal(await cache.sessionCache.getSessionWithFallback(t), null);
      }
    });

    test('the service revokes a role over HTTP: the package refuses the page once the call returned', async () => {
      const { serve, cache, facts } = env;
      const u = await user('role-http');
      const adminToken = await serve.login(facts.users.admin.email);
      await warmInNode(cache, 'user_permissions', () =>
        cache.permissionCache.hasPagePermission(u.id, 'STAFF', 'expenses', 'list'));
      assert.equal(await cache.permissionCache.hasPagePermission(u.id, 'STAFF', 'expenses', 'list'), true);

      const r = await serve.call('DELETE', `/admin/users/${u.id}/roles/${facts.roles.Staff}`, adminToken);
      assert.equal(r.status, 204, JSON.stringify(r.body));

      assert.equal(await cache.permissionCache.hasPagePermission(u.id, 'STAFF', 'expenses', 'list'), false);
      assert.equal(await cache.permissionCache.hasModulePermission(u.id, 'STAFF', 'expenses'), false);
    });

    test('the service unassigns a module over HTTP: the package refuses it at once', async () => {
      const { serve, cache, facts } = env;
      const manager = facts.users.manager;
      const operator = await serve.login(facts.users.operator.email);
      assert.equal(
        await warmInNode(cache, 'user_permissions', () =>
          cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list')),
        true,
      );

      const route = `/admin/super-admins/${facts.superAdminId}/modules/payments`;
      assert.equal((await serve.call('DELETE', route, operator)).status, 204);
      assert.equal(await cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'), false);

      assert.equal((await serve.call('PUT', route, operator)).status, 204);
      assert.equal(await cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'), true);
    });

    test('the service logs a session out over HTTP: the package refuses the token at once', async () => {
      const { serve, cache } = env;
      const u = await user('logout-http');
      const token = await serve.login(u.email);
      await warmInNode(cache, 'sessions', () => cache.sessionCache.getSessionWithFallback(token));

      assert.equal((await serve.call('POST', '/auth/logout', token)).status, 204);
      assert.equal(await cache.sessionCache.getSessionWithFallback(token), null);
    });

    test('the service changes a password over HTTP: the package refuses the other sessions at once', async () => {
      const { serve, cache } = env;
      const u = await user('password-http');
      const [current, other] = [await serve.login(u.email), await serve.login(u.email)];
      for (const t of [current, other]) {
        await warmInNode(cache, 'sessions', () => cache.sessionCache.getSessionWithFallback(t));
      }

      const r = await serve.call('POST', '/auth/password', current, {
        current_password: 'demo-password',
        new_password: 'a-new-password',
      });
      assert.equal(r.status, 204, JSON.stringify(r.body));

      assert.equal(await cache.sessionCache.getSessionWithFallback(other), null);
      assert.equal((await cache.sessionCache.getSessionWithFallback(current)).user_id, u.id);
    });

    test('the package acknowledges invalidations while the JavaScript thread is blocked', async () => {
      // The cache's work (its bus subscription among it) runs on the
      // package's own threads: another instance's invalidation is
      // acknowledged even while this thread runs no event loop at all.
      const { db, prefix } = env;
      const u = await user('blocked');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bisman-blocked-'));
      const out = path.join(dir, 'report.txt');
      const fd = fs.openSync(out, 'w');
      const bin = bismanBin();
      const child = spawn(bin, ['cache', 'invalidate', 'USER_PERMISSIONS_CHANGED', String(u.id)], {
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          REDIS_URL: mode === 'redis' ? redisUrl() : 'postgres',
          BISMAN_CACHE_PREFIX: prefix,
          // Acknowledgements are awaited this long before the command gives up on them.
          BISMAN_NEAR_CACHE_LEASE: '20s',
          BISMAN_LOG: 'warn',
        },
        stdio: ['ignore', fd, 'inherit'],
      });
      const pause = new Int32Array(new SharedArrayBuffer(4));
      const deadline = Date.now() + 120_000;
      while (!fs.readFileSync(out, 'utf8').includes('acknowledged') && Date.now() < deadline) {
        Atomics.wait(pause, 0, 0, 50);
      }
      fs.closeSync(fd);
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
      const report = fs.readFileSync(out, 'utf8');
      fs.rmSync(dir, { recursive: true, force: true });
      // This process and the running service: two instances, both acknowledged.
      assert.match(report, /2 instance\(s\) acknowledged\n/);
      assert.doesNotMatch(report, /waited out/);
    });
  });
}
