'use strict';
// The plan's §4 snippets (and §10's monitoring one), taken from the package
// README's quick start, where they must appear verbatim, run against a
// migrated database with the demo tenant and a running `bisman serve` on the
// same Redis: each answers what the service answers for the same user.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Module = require('node:module');
const { PACKAGE_DIR, REPO, addUser, setUp, sha256 } = require('./helpers');

/** The ```javascript blocks of a Markdown text (optionally only between two headings). */
function codeBlocks(markdown, fence = 'javascript') {
  const out = [];
  const re = new RegExp('^```' + fence + '\\n([\\s\\S]*?)^```$', 'gm');
  for (const m of markdown.matchAll(re)) out.push(m[1]);
  return out;
}

function section(markdown, from, to) {
  const start = markdown.indexOf(from);
  assert.notEqual(start, -1, `no section ${from}`);
  const end = to ? markdown.indexOf(to, start + from.length) : markdown.length;
  return markdown.slice(start, end === -1 ? markdown.length : end);
}

const plan = fs.readFileSync(path.join(REPO, 'docs', 'P3_SCALING_SEED.md'), 'utf8');
const readme = fs.readFileSync(path.join(PACKAGE_DIR, 'README.md'), 'utf8');
const planSnippets = [
  ...codeBlocks(section(plan, '## 4. Redis Session & Permission Cache', '## 5.')),
  ...codeBlocks(section(plan, '### Monitoring')),
];
const quickStart = section(readme, '## Quick start', '\n## ');
const readmeSnippets = codeBlocks(quickStart);
const [backendIndex] = codeBlocks(quickStart, 'js');

/** The README's snippet that contains `needle`. */
const snippet = (needle) => {
  const found = readmeSnippets.filter((s) => s.includes(needle));
  assert.equal(found.length, 1, `one quick-start snippet with ${needle}`);
  return found[0];
};

// The ERP backend's layout: my-backend/cache/index.js is the README's first
// block, and @bisman/cache resolves to this package.
const backend = fs.mkdtempSync(path.join(os.tmpdir(), 'bisman-erp-'));
fs.mkdirSync(path.join(backend, 'my-backend', 'cache'), { recursive: true });
fs.writeFileSync(path.join(backend, 'my-backend', 'cache', 'index.js'), backendIndex);
fs.mkdirSync(path.join(backend, 'node_modules', '@bisman'), { recursive: true });
fs.symlinkSync(PACKAGE_DIR, path.join(backend, 'node_modules', '@bisman', 'cache'), 'dir');
const backendRequire = Module.createRequire(path.join(backend, 'my-backend', 'routes.js'));

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;

/** Runs a snippet as the backend's code would, with its free variables
 * bound; the values of the constants it declares. */
function run(code, bindings) {
  const declared = [...code.matchAll(/^const (\w+) =/gm)].map((m) => m[1]);
  const names = Object.keys(bindings);
  const fn = new AsyncFunction('require', ...names, `${code}\nreturn { ${declared.join(', ')} };`);
  return fn(backendRequire, ...names.map((n) => bindings[n]));
}

let env;
before(async () => {
  env = await setUp();
  // The session snippet's literal user 123: a staff member of the demo tenant.
  env.erpUser = await addUser(env.db.pool, env.facts.users.staff, 'erp.user@demo.test', 123);
});
after(async () => {
  await env.tearDown();
  fs.rmSync(backend, { recursive: true, force: true });
});

test('the README quick start is the plan §4 and §10 snippets, verbatim', () => {
  assert.equal(planSnippets.length, 4);
  assert.deepEqual(readmeSnippets, planSnippets);
  assert.equal(backendIndex.trim(), "// my-backend/cache/index.js\nmodule.exports = require('@bisman/cache');");
  assert.equal(backendRequire('./cache'), require('..'), 'the backend sees the package itself');
});

test('session snippet: caches the session of a hash, finds it by token, ends the user\'s sessions', async () => {
  const { serve, cache } = env;
  const token = await serve.login('erp.user@demo.test');
  const listed = await serve.call('GET', '/auth/sessions', token);
  assert.equal(listed.status, 200);
  const current = listed.body.find((s) => s.current);

  const { session } = await run(snippet('const { sessionCache }'), {
    tokenHash: sha256(token),
    token,
    userId: 123,
  });

  // What the service knows of the same session.
  assert.equal(session.user_id, 123);
  assert.equal(session.user_type, 'STAFF');
  assert.equal(session.session_id, current.id);
  assert.equal(Date.parse(session.created_at), Date.parse(current.created_at));
  assert.equal(Date.parse(session.expires_at), Date.parse(current.expires_at));
  // invalidateUserSessions(123) ended it everywhere before it returned.
  assert.equal((await serve.call('GET', '/me/permissions', token)).status, 401);
  assert.equal(await cache.sessionCache.getSessionWithFallback(token), null);
  const row = await env.db.pool.query('SELECT revoked_at FROM user_sessions WHERE id = $1', [current.id]);
  assert.notEqual(row.rows[0].revoked_at, null);
});

test('permission snippet answers what the service answers, for every demo user', async () => {
  const { serve, facts } = env;
  const users = { ...facts.users, erp: env.erpUser };
  const seen = {};
  for (const [name, u] of Object.entries(users)) {
    const token = await serve.login(u.email);
    const me = await serve.call('GET', '/me/permissions', token);
    assert.equal(me.status, 200);
    // Twice: the second run answers from the near-cache.
    for (let round = 0; round < 2; round++) {
      const out = await run(snippet('const { permissionCache }'), {
        userId: u.id,
        userType: u.type,
        superAdminId: facts.superAdminId,
      });
      assert.deepEqual(out.perms, me.body, name);
      assert.equal(out.hasAccess, Object.keys(me.body.modules.payments ?? {}).length > 0, name);
      assert.equal(out.canView, await serve.allowed(token, 'payments', 'list'), name);
      seen[name] = out;
    }
  }
  // Not vacuous: the finance manager and the owner see payments, staff and the operator do not.
  assert.equal(seen.manager.canView, true);
  assert.equal(seen.owner.canView, true);
  assert.equal(seen.staff.canView, false);
  assert.equal(seen.operator.hasAccess, false);
});

test('invalidation snippet: the ERP\'s own changes, then the events, and the service agrees at once', async () => {
  const { serve, cache, facts, db } = env;
  const clerk = await addUser(db.pool, facts.users.staff, 'clerk@demo.test');
  const [loggedOut, stillIn] = [await serve.login(clerk.email), await serve.login(clerk.email)];
  const managerToken = await serve.login(facts.users.manager.email);
  // Warm both runtimes' caches.
  assert.equal(await serve.allowed(stillIn, 'expenses', 'list'), true);
  assert.equal(await serve.allowed(managerToken, 'reports', 'finance'), true);
  assert.equal(await cache.permissionCache.hasPagePermission(clerk.id, 'STAFF', 'expenses', 'list'), true);
  assert.notEqual(await cache.sessionCache.getSessionWithFallback(loggedOut), null);

  // The ERP's own writes: a logout, a role taken away, a module unassigned.
  await db.pool.query(
    'UPDATE user_sessions SET revoked_at = now(), is_active = false WHERE token_hash = $1',
    [sha256(loggedOut)],
  );
  await db.pool.query('DELETE FROM user_roles WHERE user_id = $1', [clerk.id]);
  await db.pool.query(
    `DELETE FROM super_admin_modules WHERE super_admin_id = $1
       AND module_id = (SELECT id FROM modules WHERE key = 'reports')`,
    [facts.superAdminId],
  );

  await run(snippet('const { invalidate }'), { userId: clerk.id, superAdminId: facts.superAdminId });

  assert.equal((await serve.call('GET', '/me/permissions', loggedOut)).status, 401);
  assert.equal(await serve.allowed(stillIn, 'expenses', 'list'), false);
  assert.equal(await serve.allowed(managerToken, 'reports', 'finance'), false);
  assert.equal(await cache.sessionCache.getSessionWithFallback(loggedOut), null);
  assert.equal(await cache.permissionCache.hasPagePermission(clerk.id, 'STAFF', 'expenses', 'list'), false);
  assert.equal(
    await cache.permissionCache.hasPagePermission(facts.users.manager.id, 'MANAGER', 'reports', 'finance'),
    false,
  );
  // Put the module back for the other tests.
  await db.pool.query(
    `INSERT INTO super_admin_modules (super_admin_id, module_id) SELECT $1, id FROM modules WHERE key = 'reports'`,
    [facts.superAdminId],
  );
  await cache.invalidate('MODULE_ASSIGNMENTS_CHANGED', facts.superAdminId);
  assert.equal(await serve.allowed(managerToken, 'reports', 'finance'), true);
});

test('monitoring snippet: Redis keyspace_hits and keyspace_misses', async () => {
  const { info } = await run(snippet('const { redis }'), {});
  assert.match(info, /^# Stats\r\n/);
  const hits = Number(/keyspace_hits:(\d+)/.exec(info)[1]);
  const misses = Number(/keyspace_misses:(\d+)/.exec(info)[1]);
  assert.ok(hits > 0 && misses >= 0, info);
  assert.deepEqual(Object.keys(await env.cache.redis.stats()).sort(), ['keyspace_hits', 'keyspace_misses']);
});
