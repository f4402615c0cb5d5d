'use strict';
// Configured like the service: the environment variables `bisman serve`
// reads (taken on first use) or configure({...}) before it; every REDIS_URL
// mode answers what the service answers; close() leaves the bus; a cache that
// cannot reach PostgreSQL fails closed; secrets never reach a message.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile, spawn } = require('node:child_process');
const { promisify } = require('node:util');
const Redis = require('ioredis');
const { PACKAGE_DIR, Serve, bismanBin, createDatabase, redisPrefix, redisUrl, setUp } = require('./helpers');

let env;
before(async () => {
  env = await setUp();
});
after(() => env.tearDown());

/** Runs `program` in a fresh Node.js process with `vars` as its whole
 * cache-related environment; its stdout, parsed as JSON. */
async function inChild(program, vars) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('BISMAN_') || k === 'BISMAN_CACHE_ADDON'),
  );
  delete clean.DATABASE_URL;
  delete clean.REDIS_URL;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', program], {
    cwd: PACKAGE_DIR,
    env: { ...clean, ...vars },
    timeout: 120_000,
  });
  return JSON.parse(stdout);
}

test('the environment configures the package on first use, TTL variables included', async () => {
  const { facts, db } = env;
  const prefix = redisPrefix();
  const manager = facts.users.manager;
  const out = await inChild(
    `const { permissionCache, health, close } = require('@bisman/cache');
     (async () => {
       const canView = await permissionCache.hasPagePermission(${manager.id}, 'MANAGER', 'payments', 'list');
       const h = await health();
       await close();
       console.log(JSON.stringify({ canView, mode: h.mode }));
     })();`,
    {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl(),
      BISMAN_CACHE_PREFIX: prefix,
      BISMAN_PERMISSIONS_TTL: '7s',
      BISMAN_ROLE_PERMISSIONS_TTL: '8s',
      BISMAN_MODULE_ASSIGNMENTS_TTL: '9s',
    },
  );
  assert.deepEqual(out, { canView: true, mode: 'redis' });
  const redis = new Redis(redisUrl());
  try {
    const ttl = (key) => redis.pttl(`${prefix}${key}`);
    const perm = await ttl(`perm:{u:${manager.id}}`);
    const role = await ttl(`role:{r:${facts.roles['Finance manager']}}`);
    const modules = await ttl(`modules:{sa:${facts.superAdminId}}`);
    assert.ok(perm > 0 && perm <= 7000, `user permissions TTL ${perm} ms`);
    assert.ok(role > 7000 && role <= 8000, `role permissions TTL ${role} ms`);
    assert.ok(modules > 8000 && modules <= 9000, `module assignments TTL ${modules} ms`);
  } finally {
    redis.disconnect();
  }
});

test('process.env as it is at first use counts, and a process that never calls close() exits', async () => {
  const out = await inChild(
    `process.env.REDIS_URL = 'disabled';
     const { permissionCache, health } = require('@bisman/cache');
     (async () => {
       const canView = await permissionCache.hasPagePermission(${env.facts.users.staff.id}, 'STAFF', 'payments', 'list');
       console.log(JSON.stringify({ canView, mode: (await health()).mode }));
     })();`,
    { DATABASE_URL: env.db.url, REDIS_URL: redisUrl() },
  );
  assert.deepEqual(out, { canView: false, mode: 'disabled' });
});

test('without DATABASE_URL the first call says so, with CONFIG_INVALID', async () => {
  const out = await inChild(
    `const { permissionCache } = require('@bisman/cache');
     permissionCache.hasModulePermission(1, 'STAFF', 'payments')
       .catch((e) => console.log(JSON.stringify({ code: e.code, message: e.message })));`,
    {},
  );
  assert.equal(out.code, 'CONFIG_INVALID');
  assert.match(out.message, /DATABASE_URL/);
});

test('every REDIS_URL mode answers what the service answers', async () => {
  const { cache, serve, facts, db } = env;
  const tokens = {};
  for (const [name, u] of Object.entries(facts.users)) tokens[name] = await serve.login(u.email);
  for (const mode of ['memory', 'postgres', 'disabled', redisUrl()]) {
    await cache.close();
    cache.configure({ databaseUrl: db.url, redisUrl: mode, cachePrefix: redisPrefix() });
    assert.equal((await cache.health()).mode, mode.startsWith('redis') ? 'redis' : mode);
    for (const [name, u] of Object.entries(facts.users)) {
      const me = await serve.call('GET', '/me/permissions', tokens[name]);
      for (let round = 0; round < 2; round++) {
        assert.deepEqual(await cache.permissionCache.getUserPermissionsWithFallback(u.id, u.type), me.body, `${mode} ${name}`);
      }
      assert.equal(
        await cache.permissionCache.hasActionPermission(u.id, u.type, 'expenses', 'approvals', 'approve'),
        await serve.allowed(tokens[name], 'expenses', 'approvals', 'approve'),
        `${mode} ${name}`,
      );
      assert.equal((await cache.sessionCache.getSessionWithFallback(tokens[name])).user_id, u.id);
    }
  }
  await cache.close();
  cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: env.prefix });
});

test('configure: options are checked at once, mistakes named, nothing changed by a refused call', async () => {
  const { cache, db } = env;
  const cases = [
    [{ nope: 1 }, 'INVALID_ARGUMENT', /unknown option `nope`/],
    [{ permissionsTtl: -5 }, 'INVALID_ARGUMENT', /permissionsTtl/],
    [{ nearCache: 'yes' }, 'INVALID_ARGUMENT', /nearCache/],
    [{ sessionTtl: 'soon' }, 'CONFIG_INVALID', /BISMAN_SESSION_TTL/],
    [{ permissionsTtl: 0 }, 'CONFIG_INVALID', /TTL/],
    [{ redisUrl: 'http://cache:6379' }, 'CONFIG_INVALID', /REDIS_URL/],
    [{ cachePrefix: 'has space' }, 'CONFIG_INVALID', /prefix/],
    [{ dbPoolSize: 0 }, 'CONFIG_INVALID', /dbPoolSize/],
    ['redis://x', 'INVALID_ARGUMENT', /options/],
  ];
  await cache.close();
  for (const [options, code, says] of cases) {
    const given = typeof options === 'object' ? { databaseUrl: db.url, ...options } : options;
    assert.throws(() => cache.configure(given), (e) => e.code === code && says.test(e.message), JSON.stringify(options));
  }
  // Still closed: a refused configure() opened nothing.
  await assert.rejects(cache.permissionCache.hasModulePermission(1, 'STAFF', 'payments'), (e) => e.code === 'CACHE_CLOSED');
  cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: env.prefix });
  assert.equal(await cache.permissionCache.hasModulePermission(env.facts.users.manager.id, 'MANAGER', 'payments'), true);
  assert.throws(() => cache.configure({ databaseUrl: db.url }), (e) => e.code === 'ALREADY_CONFIGURED');
});

test('close(): calls fail with CACHE_CLOSED, the bus stops waiting for this process, configure() reopens', async () => {
  const { cache, db, prefix, facts } = env;
  const staff = facts.users.staff;
  assert.equal(await cache.permissionCache.hasPagePermission(staff.id, 'STAFF', 'expenses', 'list'), true);
  await cache.close();
  await cache.close();
  await assert.rejects(cache.permissionCache.hasPagePermission(staff.id, 'STAFF', 'expenses', 'list'), (e) => e.code === 'CACHE_CLOSED');
  await assert.rejects(cache.invalidate('USER_LOGGED_OUT', staff.id), (e) => e.code === 'CACHE_CLOSED');

  // Another instance's invalidation now counts only the service.
  const { stdout } = await promisify(execFile)(
    bismanBin(),
    ['cache', 'invalidate', 'USER_PERMISSIONS_CHANGED', String(staff.id)],
    {
      env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: redisUrl(), BISMAN_CACHE_PREFIX: prefix, BISMAN_LOG: 'error' },
    },
  );
  assert.match(stdout, /: 0 session\(s\) ended; 1 instance\(s\) acknowledged\n/);

  cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: prefix });
  assert.equal(await cache.permissionCache.hasPagePermission(staff.id, 'STAFF', 'expenses', 'list'), true);
});

test('fails closed: when PostgreSQL cannot answer, a check is an error, never a grant', async () => {
  const { cache } = env;
  const other = await createDatabase();
  // Its own demo tenant, seeded by a short-lived service.
  const seeding = await Serve.start({ DATABASE_URL: other.url, REDIS_URL: 'memory', BISMAN_DEMO: 'true' });
  await seeding.stop();
  const manager = (await other.pool.query("SELECT id FROM users WHERE email = 'manager@demo.test'")).rows[0].id;

  await cache.close();
  cache.configure({ databaseUrl: other.url, redisUrl: 'disabled' });
  assert.equal(await cache.permissionCache.hasPagePermission(manager, 'MANAGER', 'payments', 'list'), true);
  await other.drop();
  await assert.rejects(
    cache.permissionCache.hasPagePermission(manager, 'MANAGER', 'payments', 'list'),
    (e) => e.code === 'CACHE_UNAVAILABLE',
  );

  // A server nobody listens on, with a password that must not show.
  await cache.close();
  cache.configure({ databaseUrl: 'postgres://erp:s3cr3t-pw@127.0.0.1:9/erp', redisUrl: 'memory' });
  await assert.rejects(cache.permissionCache.hasPagePermission(manager, 'MANAGER', 'payments', 'list'), (e) => {
    assert.equal(e.code, 'CACHE_UNAVAILABLE');
    assert.doesNotMatch(e.message, /s3cr3t/);
    return true;
  });

  await cache.close();
  cache.configure({ databaseUrl: env.db.url, redisUrl: redisUrl(), cachePrefix: env.prefix });
});

test('a process that exits with calls in flight and the cache open does not hang', async () => {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const { permissionCache } = require('@bisman/cache');
       for (let i = 0; i < 100; i++) permissionCache.hasPagePermission(${env.facts.users.staff.id}, 'STAFF', 'expenses', 'list');
       setTimeout(() => process.exit(0), 5);`,
    ],
    { cwd: PACKAGE_DIR, env: { ...process.env, DATABASE_URL: env.db.url, REDIS_URL: redisUrl() }, stdio: 'inherit' },
  );
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 0);
});
