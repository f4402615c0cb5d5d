'use strict';
// A load that read the old permissions must not be cached once a revocation
// from the other runtime returned. Each runtime's PostgreSQL load is held
// open (the test locks role_permissions, which the load reads last) while
// the other runtime revokes a module; after the lock is released, the
// in-flight answer may be the old one (it began before the revocation), but
// every answer asked afterwards, in both runtimes, is the new one.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('pg');
const { redisUrl, setUp } = require('./helpers');

let env;
before(async () => {
  env = await setUp();
});
after(() => env.tearDown());

/** A transaction holding role_permissions so that every reader waits. */
async function holdRolePermissions() {
  const c = new Client({ connectionString: env.db.url });
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE role_permissions IN ACCESS EXCLUSIVE MODE');
  return {
    /** Waits until some other session is blocked on the lock. */
    async waiter() {
      for (let i = 0; i < 500; i++) {
        const r = await c.query(
          // Its text may still be the connection's previous statement: a
          // statement being prepared waits for the lock before it shows.
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pg_backend_pid() = ANY (pg_blocking_pids(pid))`,
        );
        if (r.rows[0].n > 0) return;
        await new Promise((res) => setTimeout(res, 10));
      }
      const all = await c.query(
        `SELECT application_name, state, wait_event_type, left(query, 80) AS q FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      assert.fail(`no load ever waited on role_permissions: ${JSON.stringify(all.rows)}`);
    },
    async release() {
      if (c.released) return;
      c.released = true;
      await c.query('COMMIT');
      await c.end();
    },
  };
}

/** Cold caches for the finance manager (their role's and their own entries). */
async function cold() {
  const { cache, facts } = env;
  await cache.permissionCache.invalidateRolePermissions(facts.roles['Finance manager']);
  await cache.permissionCache.invalidateUserPermissions(facts.users.manager.id);
}

async function reassignPayments(operatorToken) {
  const route = `/admin/super-admins/${env.facts.superAdminId}/modules/payments`;
  assert.equal((await env.serve.call('PUT', route, operatorToken)).status, 204);
}

test('a load in flight in Node.js while the service revokes is not cached', async () => {
  const { cache, serve, facts } = env;
  const manager = facts.users.manager;
  const managerToken = await serve.login(manager.email);
  const operator = await serve.login(facts.users.operator.email);
  await cold();

  const lock = await holdRolePermissions();
  let inFlight;
  try {
    inFlight = cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list');
    await lock.waiter();
    const route = `/admin/super-admins/${facts.superAdminId}/modules/payments`;
    assert.equal((await serve.call('DELETE', route, operator)).status, 204);
  } finally {
    await lock.release();
  }
  // It read the module assignments before the revocation and its roles
  // after: its answer is the old one (allowed: it began before the
  // revocation returned). Shown, so that the race is known to have happened.
  assert.equal(await inFlight, true);

  for (let i = 0; i < 3; i++) {
    assert.equal(await cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'), false);
    assert.equal(await serve.allowed(managerToken, 'payments', 'list'), false);
  }
  await reassignPayments(operator);
  assert.equal(await cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'), true);
});

test('a load in flight in the service while Node.js revokes is not cached', async () => {
  const { cache, serve, facts, db } = env;
  const manager = facts.users.manager;
  const managerToken = await serve.login(manager.email);
  const operator = await serve.login(facts.users.operator.email);
  await cold();

  const lock = await holdRolePermissions();
  let inFlight;
  try {
    inFlight = serve.allowed(managerToken, 'payments', 'list');
    await lock.waiter();
    await db.pool.query(
      `DELETE FROM super_admin_modules WHERE super_admin_id = $1
         AND module_id = (SELECT id FROM modules WHERE key = 'payments')`,
      [facts.superAdminId],
    );
    await cache.invalidate('MODULE_ASSIGNMENTS_CHANGED', facts.superAdminId);
  } finally {
    await lock.release();
  }
  assert.equal(await inFlight, true, 'the service\'s in-flight load read the old module assignments');

  for (let i = 0; i < 3; i++) {
    assert.equal(await serve.allowed(managerToken, 'payments', 'list'), false);
    assert.equal(await cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'), false);
  }
  await reassignPayments(operator);
  assert.equal(await serve.allowed(managerToken, 'payments', 'list'), true);
});

test('concurrent misses in Node.js make one load, and all see the revocation after it', async () => {
  const { cache, serve, facts } = env;
  const manager = facts.users.manager;
  const operator = await serve.login(facts.users.operator.email);
  await cold();
  const before = await env.cache.stats();
  const loads = (rows) => rows.find((r) => r.namespace === 'role_permissions' && r.layer === 'source');
  const lock = await holdRolePermissions();
  let many;
  try {
    many = Array.from({ length: 100 }, () =>
      cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'));
    await lock.waiter();
  } finally {
    await lock.release();
  }
  assert.ok((await Promise.all(many)).every((v) => v === true));
  const after = await env.cache.stats();
  const n = (r) => (r ? r.hits + r.misses + r.errors : 0);
  assert.equal(n(loads(after)) - n(loads(before)), 1, 'one PostgreSQL load of the role for 100 concurrent checks');

  const route = `/admin/super-admins/${facts.superAdminId}/modules/payments`;
  assert.equal((await serve.call('DELETE', route, operator)).status, 204);
  const again = await Promise.all(Array.from({ length: 100 }, () =>
    cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list')));
  assert.ok(again.every((v) => v === false));
  await reassignPayments(operator);
});

test('500 checks at once on a two-connection pool without a cache: every one answered, correctly', async () => {
  const { cache, db, facts, prefix } = env;
  const { manager, staff } = facts.users;
  await cache.close();
  cache.configure({ databaseUrl: db.url, redisUrl: 'disabled', dbPoolSize: 2 });
  try {
    const asks = Array.from({ length: 500 }, (_, i) =>
      i % 2
        ? cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list')
        : cache.permissionCache.hasPagePermission(staff.id, 'STAFF', 'payments', 'list'));
    const answers = await Promise.all(asks);
    answers.forEach((a, i) => assert.equal(a, i % 2 === 1, `check ${i}`));
  } finally {
    await cache.close();
    cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: prefix });
  }
});

test('close() with calls in flight: every call settles, as an answer or a coded error', async () => {
  const { cache, db, facts, prefix } = env;
  const { manager } = facts.users;
  await cold();
  const inFlight = Array.from({ length: 200 }, (_, i) =>
    cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', i % 3 ? 'list' : 'create'));
  const settling = Promise.allSettled(inFlight); // handled before any of them settles
  await cache.close();
  const settled = await settling;
  for (const s of settled) {
    if (s.status === 'fulfilled') assert.equal(typeof s.value, 'boolean');
    else assert.ok(['CACHE_CLOSED', 'CACHE_UNAVAILABLE'].includes(s.reason.code), s.reason.message);
  }
  cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: prefix });
  assert.equal(await cache.permissionCache.hasPagePermission(manager.id, 'MANAGER', 'payments', 'list'), true);
});
