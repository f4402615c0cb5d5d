'use strict';
// The package's benchmark: `hasPagePermission` from Node.js on a near-cache
// hit, through Redis (near-cache off) and computed from PostgreSQL (no
// cache), the same check over HTTP against `bisman serve`, and a peer
// yardstick: a plain GET with ioredis from this process. Sequential calls,
// each timed; medians and tails in microseconds.
//
//   npm run bench                 # builds the addon (release) and bisman (release), then measures
//   node bench/bench.js [--calls N] [--json FILE]
//
// Needs PostgreSQL and Redis as for the tests (BISMAN_TEST_DATABASE_URL,
// BISMAN_TEST_REDIS_URL); it makes a database of its own and drops it.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');

const REPO = path.join(__dirname, '..', '..', '..');
if (!process.env.BISMAN_BIN) {
  execFileSync('cargo', ['build', '--quiet', '--release', '-p', 'bisman', '--bin', 'bisman'], {
    cwd: REPO,
    stdio: 'inherit',
  });
  process.env.BISMAN_BIN = path.join(REPO, 'target', 'release', 'bisman');
}
const { Serve, createDatabase, redisPrefix, redisUrl } = require('../test/helpers');
const cache = require('..');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const CALLS = Number(option('--calls', '20000'));
const JSON_OUT = option('--json', null);

/** Times `calls` sequential awaits of `fn` after `warm` untimed ones,
 * each on its own; percentiles in µs (the clock's own cost, ~0.1 µs, is in
 * every sample). */
async function measure(fn, calls, warm = Math.min(2000, calls)) {
  for (let i = 0; i < warm; i++) await fn(i);
  const ns = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    ns[i] = Number(process.hrtime.bigint() - t);
  }
  ns.sort();
  const at = (q) => ns[Math.min(calls - 1, Math.floor(q * calls))] / 1000;
  return { calls, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** Times batches of `batch` sequential awaits; percentiles of the mean
 * per call in µs (for sub-microsecond calls, where the clock's cost would
 * be a large share of a single sample). */
async function measureBatched(fn, batches, batch = 100) {
  for (let i = 0; i < 2000; i++) await fn(i);
  const ns = new Float64Array(batches);
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) await fn(i);
    ns[b] = Number(process.hrtime.bigint() - t) / batch;
  }
  ns.sort();
  const at = (q) => ns[Math.min(batches - 1, Math.floor(q * batches))] / 1000;
  return { calls: batches * batch, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** One GET over a kept-alive connection; resolves with the parsed body. */
function httpGet(agent, addr, route, token) {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host, port, path: route, agent, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(body))));
      },
    );
    req.on('error', reject);
  });
}

async function main() {
  const db = await createDatabase();
  const prefix = redisPrefix();
  const serve = await Serve.start({
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl(),
    BISMAN_CACHE_PREFIX: prefix,
    BISMAN_DEMO: 'true',
    BISMAN_DB_POOL_SIZE: '8',
  });
  const results = [];
  const record = (name, layer, r) => {
    results.push({ name, layer, ...r });
    console.error(`${name.padEnd(52)} p50 ${r.p50.toFixed(2).padStart(8)} µs  p90 ${r.p90.toFixed(2).padStart(8)} µs  p99 ${r.p99.toFixed(2).padStart(8)} µs`);
  };
  try {
    const manager = (await db.pool.query("SELECT id FROM users WHERE email = 'manager@demo.test'")).rows[0].id;
    const token = await serve.login('manager@demo.test');
    const check = () => cache.permissionCache.hasPagePermission(manager, 'MANAGER', 'payments', 'list');

    // 1. Near-cache hit (Redis behind it, subscription confirmed).
    cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: prefix });
    while (!(await cache.health()).near_usable) await new Promise((r) => setTimeout(r, 20));
    if ((await check()) !== true) throw new Error('the manager may view payments/list');
    record('hasPagePermission, near-cache hit', 'l1', await measure(check, CALLS));
    record('hasPagePermission, near-cache hit (batches of 100)', 'l1-batched', await measureBatched(check, CALLS / 100));

    // 2. Through Redis: no near-cache, a shared-store hit each time.
    await cache.close();
    cache.configure({ databaseUrl: db.url, redisUrl: redisUrl(), cachePrefix: prefix, nearCache: false });
    record('hasPagePermission, through Redis (near-cache off)', 'l2', await measure(check, Math.min(CALLS, 10000)));

    // 3. From PostgreSQL: no cache at all, computed by one query each time.
    await cache.close();
    cache.configure({ databaseUrl: db.url, redisUrl: 'disabled' });
    record('hasPagePermission, from PostgreSQL (no cache)', 'source', await measure(check, Math.min(CALLS, 5000)));
    await cache.close();

    // 4. The same check over HTTP against bisman serve (keep-alive, one connection).
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const route = '/api/v1/permissions/check?module=payments&page=list';
    if (!(await httpGet(agent, serve.addr, route, token)).allowed) throw new Error('HTTP check refused');
    record('GET /api/v1/permissions/check (bisman serve, HTTP)', 'http', await measure(
      () => httpGet(agent, serve.addr, route, token),
      Math.min(CALLS, 10000),
    ));
    agent.destroy();

    // 5. Yardstick: a plain GET with ioredis from this process.
    const redis = new Redis(redisUrl());
    await redis.set(`${prefix}bench:yardstick`, JSON.stringify({ allowed: true }));
    record('ioredis GET (peer yardstick)', 'peer', await measure(
      () => redis.get(`${prefix}bench:yardstick`),
      Math.min(CALLS, 10000),
    ));
    await redis.del(`${prefix}bench:yardstick`);
    redis.disconnect();
  } finally {
    await cache.close();
    await serve.stop();
    await db.drop();
  }

  const by = Object.fromEntries(results.map((r) => [r.layer, r]));
  const ratio = by.http.p50 / by.l1.p50;
  const ratioBatched = by.http.p50 / by['l1-batched'].p50;
  const meta = {
    node: process.version,
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    date: new Date().toISOString(),
  };
  console.log('| operation | p50 µs | p90 µs | p99 µs |');
  console.log('|---|---:|---:|---:|');
  for (const r of results) {
    console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p90.toFixed(2)} | ${r.p99.toFixed(2)} |`);
  }
  console.log(`\nnear-cache hit vs HTTP: ${ratio.toFixed(0)}× faster at p50 (${ratioBatched.toFixed(0)}× with the hit timed in batches); ` +
    `near-cache hit vs ioredis GET: ${(by.peer.p50 / by.l1.p50).toFixed(1)}×. ` +
    `Node ${meta.node}, ${meta.cpus} CPUs (${meta.cpu}), load ${meta.load}.`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ meta, results, ratio, ratioBatched }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
