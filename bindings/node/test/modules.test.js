'use strict';
// CommonJS and ES modules both work and are one instance; the shipped
// TypeScript definitions describe both entries and reject misuse.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { PACKAGE_DIR } = require('./helpers');

const EXPORTS = [
  'EVENTS',
  'close',
  'configure',
  'health',
  'invalidate',
  'permissionCache',
  'redis',
  'sessionCache',
  'stats',
];

test('CommonJS: require by package name is the package', () => {
  const cjs = require('@bisman/cache');
  assert.equal(cjs, require('..'));
  assert.deepEqual(Object.keys(cjs).sort(), EXPORTS);
  for (const fn of ['setSession', 'getSessionWithFallback', 'invalidateUserSessions']) {
    assert.equal(typeof cjs.sessionCache[fn], 'function', fn);
  }
  for (const fn of [
    'getUserPermissionsWithFallback',
    'hasModulePermission',
    'hasPagePermission',
    'invalidateUserPermissions',
    'invalidateSuperAdminPermissions',
  ]) {
    assert.equal(typeof cjs.permissionCache[fn], 'function', fn);
  }
  assert.ok(Object.isFrozen(cjs.sessionCache) && Object.isFrozen(cjs.permissionCache));
});

test('ES module: named and default exports are the CommonJS instance', async () => {
  const esm = await import('@bisman/cache');
  const cjs = require('@bisman/cache');
  assert.equal(esm.default, cjs);
  for (const name of EXPORTS) assert.equal(esm[name], cjs[name], name);
  assert.deepEqual(Object.keys(esm).filter((k) => k !== 'default').sort(), EXPORTS);
});

test('index.d.ts declares exactly the exports', () => {
  const dts = fs.readFileSync(path.join(PACKAGE_DIR, 'index.d.ts'), 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:const|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, EXPORTS);
});

test('the types compile for both entries, and misuse does not', () => {
  const tsc = path.join(PACKAGE_DIR, 'node_modules', 'typescript', 'bin', 'tsc');
  const fixtures = ['usage.mts', 'usage.cts'].map((f) => path.join(__dirname, 'types', f));
  // usage.mts marks each misuse with @ts-expect-error: were the types
  // loose (any), the unused directive would fail the check.
  execFileSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', ...fixtures],
    { cwd: PACKAGE_DIR, stdio: 'pipe' },
  );
});

test('an ES module program runs the plan\'s API without a build step', () => {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { permissionCache, EVENTS } from '@bisman/cache';
       try { await permissionCache.hasPagePermission(-1, 'STAFF', 'payments', 'list'); }
       catch (e) { console.log(e instanceof Error, e.code, EVENTS.USER_LOGGED_OUT); }`,
    ],
    { cwd: PACKAGE_DIR, encoding: 'utf8' },
  );
  assert.equal(out.trim(), 'true INVALID_ARGUMENT USER_LOGGED_OUT');
});
