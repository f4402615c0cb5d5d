'use strict';
// Test support for the package's tests, mirroring crates/bisman-testkit:
// a database of its own per test file (migrated, with the demo tenant, by a
// real `bisman serve --demo`), a Redis key prefix of its own, and `bisman
// serve` processes spoken to over HTTP.
//
// BISMAN_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
// names the server and a database to administer it from; BISMAN_TEST_REDIS_URL
// (default redis://127.0.0.1:6379) the Redis. BISMAN_BIN names the `bisman`
// binary (default: the workspace's target/debug/bisman, built when missing).

const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { Client, Pool } = require('pg');

const PACKAGE_DIR = path.join(__dirname, '..');
const REPO = path.join(PACKAGE_DIR, '..', '..');

const adminUrl = () =>
  process.env.BISMAN_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = () => process.env.BISMAN_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/** A Redis key prefix no other test uses. */
const redisPrefix = () => `bt:${crypto.randomUUID().replaceAll('-', '')}:`;

/** The URL of `database` on the test server. */
function databaseUrl(database) {
  const u = new URL(adminUrl());
  u.pathname = `/${database}`;
  return u.toString();
}

let builtBin;
/** The `bisman` binary, built (once per process) when the caller did not name one. */
function bismanBin() {
  if (process.env.BISMAN_BIN) return process.env.BISMAN_BIN;
  if (!builtBin) {
    execFileSync('cargo', ['build', '--quiet', '-p', 'bisman', '--bin', 'bisman'], {
      cwd: REPO,
      stdio: 'inherit',
    });
    builtBin = path.join(REPO, 'target', 'debug', 'bisman');
  }
  return builtBin;
}

/** A new empty database (named like the Rust test kit's, so that its
 * clean-up of crashed runs covers it too); `drop()` removes it. */
async function createDatabase() {
  const secs = Math.floor(Date.now() / 1000);
  const name = `bisman_t_${secs}_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = databaseUrl(name);
  const pool = new Pool({ connectionString: url, max: 4 });
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new Client({ connectionString: adminUrl() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A running `bisman serve` (like the test kit's ServeProcess). */
class Serve {
  /** Starts `bisman serve --bind 127.0.0.1:0` with `env` and waits until it
   * listens. Maintenance is off. */
  static async start(env) {
    const child = spawn(bismanBin(), ['serve', '--bind', '127.0.0.1:0'], {
      env: {
        ...process.env,
        BISMAN_MAINTENANCE: 'false',
        BISMAN_DB_POOL_SIZE: '4',
        BISMAN_LOG: 'error',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = readline.createInterface({ input: child.stdout });
    const addr = await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`bisman serve exited (${code}) before listening`)));
      lines.on('line', (line) => {
        const m = /^bisman serve: listening on http:\/\/(\S+)/.exec(line);
        if (m) resolve(m[1]);
      });
    });
    child.removeAllListeners('exit');
    return new Serve(child, addr);
  }

  constructor(child, addr) {
    this.child = child;
    this.addr = addr;
  }

  /** One request; { status, body } with the JSON body or null. */
  async call(method, route, token, body) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`http://${this.addr}/api/v1${route}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, body: json };
  }

  /** Logs in to tenant `demo`; the session token. */
  async login(email, password = 'demo-password') {
    const r = await this.call('POST', '/auth/login', null, { tenant: 'demo', email, password });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.token;
  }

  /** The service's answer to "may the caller view `module`/`page`?" */
  async allowed(token, module, page, action = 'view') {
    const r = await this.call('GET', `/permissions/check?module=${module}&page=${page}&action=${action}`, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.allowed;
  }

  /** SIGTERM, then its exit. */
  async stop() {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

/**
 * Everything a test file needs: its own database with the demo tenant (seeded
 * by `bisman serve --demo`, which stays running as "the service"), its own
 * Redis prefix, and the package configured on the same store.
 */
async function setUp({ redis = redisUrl(), serveEnv = {}, configure = {} } = {}) {
  const db = await createDatabase();
  const prefix = redisPrefix();
  const serve = await Serve.start({
    DATABASE_URL: db.url,
    REDIS_URL: redis,
    BISMAN_CACHE_PREFIX: prefix,
    BISMAN_DEMO: 'true',
    ...serveEnv,
  });
  const cache = require('..');
  cache.configure({ databaseUrl: db.url, redisUrl: redis, cachePrefix: prefix, ...configure });
  const facts = await demoFacts(db.pool);
  return {
    db,
    prefix,
    serve,
    cache,
    facts,
    async tearDown() {
      await cache.close();
      await serve.stop();
      await db.drop();
    },
  };
}

/** The demo tenant's users, super admin and roles. */
async function demoFacts(pool) {
  const users = await pool.query(
    `SELECT u.id, u.email, u.user_type FROM users u JOIN tenants t ON t.id = u.tenant_id
     WHERE t.slug = 'demo' ORDER BY u.id`,
  );
  const byName = {};
  for (const u of users.rows) byName[u.email.split('@')[0]] = { id: u.id, type: u.user_type, email: u.email };
  const sa = await pool.query(
    `SELECT s.id FROM super_admins s JOIN tenants t ON t.id = s.tenant_id WHERE t.slug = 'demo'`,
  );
  const roles = await pool.query(
    `SELECT r.id, r.name FROM roles r JOIN tenants t ON t.id = r.tenant_id WHERE t.slug = 'demo'`,
  );
  return {
    users: byName,
    superAdminId: sa.rows[0].id,
    roles: Object.fromEntries(roles.rows.map((r) => [r.name, r.id])),
  };
}

/** Adds a demo user like `like` (same type, super admin, roles and password),
 * with id `id` when given. Its { id, type, email }. */
async function addUser(pool, like, email, id) {
  const r = await pool.query(
    `INSERT INTO users (${id ? 'id, ' : ''}tenant_id, email, name, password_hash, user_type, super_admin_id)
     SELECT ${id ? '$3, ' : ''}tenant_id, $2, $2, password_hash, user_type, super_admin_id FROM users WHERE id = $1
     RETURNING id, user_type`,
    id ? [like.id, email, id] : [like.id, email],
  );
  const user = { id: r.rows[0].id, type: r.rows[0].user_type, email };
  await pool.query(
    'INSERT INTO user_roles (user_id, role_id) SELECT $1, role_id FROM user_roles WHERE user_id = $2',
    [user.id, like.id],
  );
  return user;
}

/** What a hit rate counter of the package says now: L1 hits of a namespace. */
async function nearHits(cache, namespace) {
  const rows = await cache.stats();
  const row = rows.find((r) => r.namespace === namespace && r.layer === 'l1');
  return row ? row.hits : 0;
}

/** The SHA-256 of a token, as the ERP's own code would compute it. */
const sha256 = (token) => crypto.createHash('sha256').update(token).digest('hex');

module.exports = {
  PACKAGE_DIR,
  REPO,
  Serve,
  addUser,
  bismanBin,
  createDatabase,
  demoFacts,
  fs,
  nearHits,
  redisPrefix,
  redisUrl,
  setUp,
  sha256,
};
