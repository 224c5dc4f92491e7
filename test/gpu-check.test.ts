// What of the GPU check runs without a GPU: carrying files in checksummed
// parts (bench/gpu/pack.sh, unpack.sh), and bench/gpu/check.sh's answer on a
// machine with no GPU, or with a GPU but no CUDA provider.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { relativeDifferences } from '../bench/gpu/check.js';
import { cudaProviderInstalled } from '../src/onnx/runtime.js';
import { needsFixtures, repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

const script = (name: string) => path.join(repoRoot, 'bench', 'gpu', name);

async function bash(args: string[], env: Record<string, string> = {}) {
  const r = await execa('bash', args, { reject: false, stdin: 'ignore', env: { ...process.env, ...env }, all: true });
  return { code: r.exitCode ?? -1, out: String(r.all) };
}

const lastLine = (text: string) => text.trimEnd().split('\n').at(-1) ?? '';

async function sampleTree(root: string): Promise<void> {
  await mkdir(path.join(root, 'lib', 'deep'), { recursive: true });
  await writeFile(path.join(root, 'lib', 'deep', 'big.so'), randomBytes(3 * 1024 * 1024 + 123));
  await writeFile(path.join(root, 'README'), 'carried\n');
}

async function sameFiles(a: string, b: string): Promise<void> {
  for (const rel of ['README', 'lib/deep/big.so']) assert.deepEqual(await readFile(path.join(b, rel)), await readFile(path.join(a, rel)), rel);
}

test('pack splits a folder into checksummed parts; stash over several transfers, then join, gives back the same files', async () => {
  const dir = await tempDir();
  await sampleTree(path.join(dir, 'src'));
  const packed = await bash([script('pack.sh'), path.join(dir, 'src'), path.join(dir, 'parts'), '--part-bytes', String(1024 * 1024), '--compress', 'gzip']);
  assert.equal(packed.code, 0, packed.out);
  const names = (await readdir(path.join(dir, 'parts'))).sort();
  const parts = names.filter((n) => n.includes('.part-'));
  assert.deepEqual(parts, ['bundle.tar.gz.part-000', 'bundle.tar.gz.part-001', 'bundle.tar.gz.part-002', 'bundle.tar.gz.part-003']);
  for (const p of parts) assert.ok((await stat(path.join(dir, 'parts', p))).size <= 1024 * 1024, p);
  const sums = (await readFile(path.join(dir, 'parts', 'SHA256SUMS'), 'utf8')).trimEnd().split('\n');
  assert.equal(sums.length, 5);
  assert.match(sums.at(-1)!, /^[0-9a-f]{64} {2}bundle\.tar\.gz$/);

  // Two transfers of two parts each, as a 64 MiB-per-call carry would do.
  const stash = path.join(dir, 'stash');
  for (const [i, batch] of [parts.slice(0, 2), parts.slice(2)].entries()) {
    const carry = path.join(dir, `carry-${i}`);
    await mkdir(carry);
    for (const f of [...batch, 'SHA256SUMS']) await copyFile(path.join(dir, 'parts', f), path.join(carry, f));
    const s = await bash([script('unpack.sh'), 'stash', carry, stash]);
    assert.equal(s.code, 0, s.out);
    assert.match(s.out, i === 0 ? /still missing 2: bundle\.tar\.gz\.part-002 bundle\.tar\.gz\.part-003/ : /all 4 part\(s\) are in/);
    if (i === 0) assert.equal((await bash([script('unpack.sh'), 'join', stash, path.join(dir, 'dest')])).code, 1);
  }
  const joined = await bash([script('unpack.sh'), 'join', stash, path.join(dir, 'dest')]);
  assert.equal(joined.code, 0, joined.out);
  await sameFiles(path.join(dir, 'src'), path.join(dir, 'dest'));
  const again = await bash([script('unpack.sh'), 'join', stash, path.join(dir, 'dest')]);
  assert.match(again.out, /already holds this pack/);
});

test('a damaged, missing or foreign part is named and nothing is extracted', async () => {
  const dir = await tempDir();
  await sampleTree(path.join(dir, 'src'));
  assert.equal((await bash([script('pack.sh'), path.join(dir, 'src'), path.join(dir, 'parts'), '--part-bytes', String(1024 * 1024), '--compress', 'none'])).code, 0);
  const part = (n: number) => path.join(dir, 'parts', `bundle.tar.part-00${n}`);

  // A byte flipped in transfer: stash refuses that part and keeps the good ones.
  const carry = path.join(dir, 'carry');
  await mkdir(carry);
  for (const f of ['SHA256SUMS', 'bundle.tar.part-000', 'bundle.tar.part-001']) await copyFile(path.join(dir, 'parts', f), path.join(carry, f));
  const bytes = await readFile(path.join(carry, 'bundle.tar.part-001'));
  bytes[4096] = bytes[4096]! ^ 0xff;
  await writeFile(path.join(carry, 'bundle.tar.part-001'), bytes);
  const stash = path.join(dir, 'stash');
  const s = await bash([script('unpack.sh'), 'stash', carry, stash]);
  assert.equal(s.code, 1);
  assert.match(s.out, /bundle\.tar\.part-001 is damaged .*carry it again/);
  assert.deepEqual((await readdir(stash)).sort(), ['SHA256SUMS', 'bundle.tar.part-000']);

  // Missing parts: join lists them.
  const j = await bash([script('unpack.sh'), 'join', stash, path.join(dir, 'dest')]);
  assert.equal(j.code, 1);
  assert.match(j.out, /missing part\(s\) in .*: bundle\.tar\.part-001 bundle\.tar\.part-002 bundle\.tar\.part-003/);

  // Rot in the stash after it was checked: join checks again.
  for (const n of [1, 2, 3]) await copyFile(part(n), path.join(stash, `bundle.tar.part-00${n}`));
  const rotten = await readFile(path.join(stash, 'bundle.tar.part-002'));
  rotten[10] = rotten[10]! ^ 1;
  await writeFile(path.join(stash, 'bundle.tar.part-002'), rotten);
  const r = await bash([script('unpack.sh'), 'join', stash, path.join(dir, 'dest')]);
  assert.equal(r.code, 1);
  assert.match(r.out, /damaged part\(s\) in .*: bundle\.tar\.part-002/);
  await assert.rejects(stat(path.join(dir, 'dest')));

  // Parts of another pack are not mixed in.
  await writeFile(path.join(dir, 'src', 'README'), 'changed\n');
  assert.equal((await bash([script('pack.sh'), path.join(dir, 'src'), path.join(dir, 'other'), '--compress', 'none'])).code, 0);
  const foreign = await bash([script('unpack.sh'), 'stash', path.join(dir, 'other'), stash]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.out, /holds parts of another pack/);
});

test('xz packs (the default) round-trip', async () => {
  const dir = await tempDir();
  await sampleTree(path.join(dir, 'src'));
  assert.equal((await bash([script('pack.sh'), path.join(dir, 'src'), path.join(dir, 'parts'), '--part-mib', '1'])).code, 0);
  assert.ok((await readdir(path.join(dir, 'parts'))).includes('bundle.tar.xz.part-000'));
  assert.equal((await bash([script('unpack.sh'), 'stash', path.join(dir, 'parts'), path.join(dir, 'stash')])).code, 0);
  assert.equal((await bash([script('unpack.sh'), 'join', path.join(dir, 'stash'), path.join(dir, 'dest')])).code, 0);
  await sameFiles(path.join(dir, 'src'), path.join(dir, 'dest'));
});

test('the per-image relative feature difference', () => {
  const a = Float32Array.of(3, 4, 1, 0);
  const b = Float32Array.of(3, 4.5, 1, 0.01);
  const d = relativeDifferences(a, b, 2);
  assert.ok(Math.abs(d[0]! - 0.1) < 1e-7);
  assert.ok(Math.abs(d[1]! - 0.01) < 1e-7);
});

const hasNvidiaSmi = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v nvidia-smi'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('check.sh without a GPU: device auto falls back with its message, exit 0, "no GPU" in the last line', { skip: needsFixtures || (hasNvidiaSmi && 'this machine has nvidia-smi') }, async () => {
  const work = await tempDir();
  const r = await bash([script('check.sh'), '--work', work]);
  assert.equal(r.code, 0, r.out);
  assert.match(lastLine(r.out), /no GPU/);
  assert.doesNotMatch(r.out, /PASSED/);
  assert.match(r.out, /device auto, features: said ".*running on the CPU/);
  assert.match(r.out, /device auto, train: said ".*running on the CPU/);
  assert.match(r.out, /device auto, features: its record says it ran on device 'cpu'/);
  assert.match(r.out, /device cuda: refused as documented/);
});

const providerHere = cudaProviderInstalled() && 'the CUDA provider is installed here';

test('check.sh with a GPU but no CUDA provider fails and says what to carry; it never passes', { skip: needsFixtures || providerHere }, async () => {
  const work = await tempDir();
  const fake = path.join(work, 'bin');
  await mkdir(fake);
  await writeFile(path.join(fake, 'nvidia-smi'), '#!/bin/sh\necho "NVIDIA H200, 580.159.04, 143771 MiB"\n');
  await chmod(path.join(fake, 'nvidia-smi'), 0o755);
  const r = await bash([script('check.sh'), '--work', path.join(work, 'w')], { PATH: `${fake}:${process.env.PATH}` });
  assert.equal(r.code, 3, r.out);
  assert.match(lastLine(r.out), /^gpu check: FAILED: a GPU but no CUDA provider: .*bench\/gpu\/README\.md/);
  assert.doesNotMatch(r.out, /PASSED|no GPU/);
});
