// The fault suite's copy of the app with a broken CUDA provider
// (test/support/faults-device.ts) must never write into the real
// onnxruntime-node package, whatever links lead to it: a symlinked
// node_modules (a shared install), or a symlinked package inside it.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import { appWithBrokenProvider } from './support/faults-device.js';

const PROVIDER = path.join('onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
const roots: string[] = [];
afterEach(async () => {
  for (const dir of roots.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

/** A built app at `root`: its node_modules is `modules` (a real folder elsewhere, linked in by `link`). */
async function fakeApp(link: 'node_modules' | 'package' | 'none', withProvider = false) {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tlpipe-device-app-'));
  roots.push(base);
  const root = path.join(base, 'repo');
  const shared = path.join(base, 'shared-install');
  const realPackage = path.join(link === 'package' ? path.join(base, 'store') : shared, PROVIDER);
  await fs.mkdir(realPackage, { recursive: true });
  await fs.writeFile(path.join(realPackage, 'libonnxruntime.so.1'), 'the real runtime\n');
  if (withProvider) await fs.writeFile(path.join(realPackage, 'libonnxruntime_providers_cuda.so'), 'the real CUDA provider\n');
  await fs.mkdir(path.join(root, 'dist', 'src'), { recursive: true });
  await fs.writeFile(path.join(root, 'dist', 'src', 'bin.cjs'), '// built\n');
  await fs.mkdir(path.join(root, 'schemas'));
  await fs.writeFile(path.join(root, 'schemas', 'pipeline.schema.json'), '{}\n');
  await fs.writeFile(path.join(root, 'package.json'), '{}\n');
  if (link === 'node_modules') await fs.symlink(shared, path.join(root, 'node_modules'));
  else if (link === 'package') {
    await fs.mkdir(path.join(root, 'node_modules'));
    await fs.symlink(path.join(base, 'store', 'onnxruntime-node'), path.join(root, 'node_modules', 'onnxruntime-node'));
  } else await fs.rename(shared, path.join(root, 'node_modules'));
  const realDir = link === 'none' ? path.join(root, 'node_modules', PROVIDER) : realPackage;
  return { base, root, realDir };
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir)).sort()) out[name] = await fs.readFile(path.join(dir, name), 'utf8');
  return out;
}

for (const link of ['none', 'node_modules', 'package'] as const) {
  for (const withProvider of [false, true]) {
    test(`the broken provider lands in the copy only (link: ${link}, provider installed: ${withProvider})`, async () => {
      const { base, root, realDir } = await fakeApp(link, withProvider);
      const before = await snapshot(realDir);
      const app = path.join(base, 'app');
      await fs.mkdir(app);
      await appWithBrokenProvider(root, app);

      assert.deepEqual(await snapshot(realDir), before, 'the real package changed');
      const copy = path.join(app, 'node_modules', PROVIDER);
      assert.ok(!(await fs.lstat(path.join(app, 'node_modules'))).isSymbolicLink(), 'node_modules is still a link in the copy');
      const real = await fs.realpath(copy);
      assert.ok(real.startsWith((await fs.realpath(app)) + path.sep), `the copy's provider folder resolves to ${real}`);
      assert.equal(await fs.readFile(path.join(copy, 'libonnxruntime_providers_cuda.so'), 'utf8'), 'not a shared library\n');
      // The rest is hard-linked, not copied: the same inode as the real file.
      const [a, b] = await Promise.all([fs.stat(path.join(copy, 'libonnxruntime.so.1')), fs.stat(path.join(realDir, 'libonnxruntime.so.1'))]);
      assert.equal(a.ino, b.ino);
      assert.equal(await fs.readFile(path.join(app, 'dist', 'src', 'bin.cjs'), 'utf8'), '// built\n');
    });
  }
}
