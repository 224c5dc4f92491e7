// Caching, proved by a step that counts its runs.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { countStepSource } from './support/count-step.js';
import { tempDir } from './support/tmp.js';

const pipeline = `# a chain of three counting stages
tlpipe: 1
name: chain
params:
  a: 1
  b: 2
stages:
  first:
    uses: ./steps/count.mjs
    with: {value: "\${a}", file: data.txt}
  second:
    uses: ./steps/count.mjs
    inputs: [first]
    with: {value: "\${b}"}
  third:
    uses: ./steps/count.mjs
    inputs: [second]
    with: {value: 3, out: out/result.txt}
`;

async function project(extra: Record<string, string> = {}) {
  const dir = await tempDir({
    'package.json': '{}',
    'steps/count.mjs': countStepSource,
    'data.txt': 'hello',
    'p.yaml': pipeline,
    ...extra,
  });
  const log = path.join(dir, 'count.log');
  await writeFile(log, '');
  const clear = () => writeFile(log, '');
  const runs = async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  const run = async (...args: string[]) => {
    await writeFile(log, '');
    const r = await tlpipe(['run', 'p.yaml', ...args], { cwd: dir, env: { COUNT_LOG: log, ...(extra.__env ? JSON.parse(extra.__env) : {}) } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return { ...r, ran: await runs() };
  };
  return { dir, log, run, clear, runs };
}

test('nothing changed: no step runs', async () => {
  const p = await project();
  assert.deepEqual((await p.run()).ran, ['first', 'second', 'third']);
  assert.deepEqual((await p.run()).ran, []);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), 'third=3\nsecond=2\nfirst=1\n');
});

test('a parameter change reruns that stage and what depends on it, nothing else', async () => {
  const p = await project();
  await p.run();
  assert.deepEqual((await p.run('--set', 'b=5')).ran, ['second', 'third']);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), 'third=3\nsecond=5\nfirst=1\n');
  // Back to the old value: everything is still cached.
  assert.deepEqual((await p.run()).ran, []);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), 'third=3\nsecond=2\nfirst=1\n');
});

test('an edited comment or reordered keys rerun nothing', async () => {
  const p = await project();
  await p.run();
  const reordered = pipeline
    .replace('# a chain of three counting stages', '# the same chain, described differently')
    .replace('with: {value: "${a}", file: data.txt}', 'with: {file: data.txt, value: "${a}"}')
    .replace('params:\n  a: 1\n  b: 2', 'params:\n  b: 2\n  a: 1');
  assert.notEqual(reordered, pipeline);
  await writeFile(path.join(p.dir, 'p.yaml'), reordered);
  assert.deepEqual((await p.run()).ran, []);
});

test("an input file's content change reruns its stage and downstream", async () => {
  const p = await project();
  await p.run();
  await writeFile(path.join(p.dir, 'data.txt'), 'hello, world');
  assert.deepEqual((await p.run()).ran, ['first', 'second', 'third']);
  // Rewriting the same content (new mtime) is not a change.
  await writeFile(path.join(p.dir, 'data.txt'), 'hello, world');
  assert.deepEqual((await p.run()).ran, []);
});

test('a step version bump reruns every stage of that step', async () => {
  const p = await project();
  await p.run();
  await p.clear();
  const r = await tlpipe(['run', 'p.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log, COUNT_STEP_VERSION: '2' } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await readFile(p.log, 'utf8')).split('\n').filter(Boolean), ['first', 'second', 'third']);
});

test('status says what is cached and why the rest would run', async () => {
  const p = await project();
  await p.run();
  const r = await tlpipe(['status', 'p.yaml', '--set', 'b=7'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^first {3}cached {2}[0-9a-f]{12}$/);
  assert.equal(lines[1], 'second  to-run  changed: params.value: 2 → 7');
  assert.equal(lines[2], 'third   to-run  input from "second" changes');
  // --dry-run shows the same plan and runs nothing.
  await p.clear();
  const dry = await tlpipe(['run', 'p.yaml', '--set', 'b=7', '--dry-run'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(dry.stdout, r.stdout);
  assert.equal(await readFile(p.log, 'utf8'), '');
});

test('--force, --force=STAGE, --from and --only', async () => {
  const p = await project();
  await p.run();
  assert.deepEqual((await p.run('--force')).ran, ['first', 'second', 'third']);
  assert.deepEqual((await p.run('--force=second')).ran, ['second']);
  assert.deepEqual((await p.run('--from', 'second')).ran, ['second', 'third']);
  assert.deepEqual((await p.run('--only', 'third', '--force')).ran, ['third']);
  const bad = await tlpipe(['run', 'p.yaml', '--only', 'thrid'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(bad.code, 64);
  assert.equal(bad.stderr.trim(), '--only thrid: no such stage in p.yaml. Did you mean "third"? Stages: first, second, third.');
});

test('--only with an input that is not cached is a clear error', async () => {
  const p = await project();
  const r = await tlpipe(['run', 'p.yaml', '--only', 'second'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(r.code, 1);
  assert.match(r.stdout, /second failed: the artifact of "first" is not in the cache: run without --only first/);
});

test('--json prints one summary with statuses, fingerprints, metrics and outputs', async () => {
  const p = await project();
  await p.run();
  const r = await tlpipe(['run', 'p.yaml', '--set', 'b=9', '--json'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(r.code, 0);
  const s = JSON.parse(r.stdout);
  assert.match(s.runId, /^\d{8}-\d{6}-[0-9a-f]{6}$/);
  assert.deepEqual(
    s.stages.map((x: { name: string; status: string }) => [x.name, x.status]),
    [
      ['first', 'cached'],
      ['second', 'ran'],
      ['third', 'ran'],
    ],
  );
  for (const st of s.stages) assert.match(st.fingerprint, /^[0-9a-f]{64}$/);
  assert.deepEqual(s.metrics.second, { chunks: 0 });
  assert.deepEqual(s.outputs, ['out/result.txt']);
});

test('runs are recorded and can be listed and shown; gc frees what no kept run references', async () => {
  const p = await project();
  await p.run();
  await p.run('--set', 'a=2');
  const list = await tlpipe(['runs'], { cwd: p.dir });
  assert.equal(list.stdout.trim().split('\n').length, 2);
  const shown = JSON.parse((await tlpipe(['show', 'last'], { cwd: p.dir })).stdout);
  assert.deepEqual(shown.params, { a: 2, b: 2 });
  assert.deepEqual(shown.set, ['a=2']);
  assert.equal(shown.stages.length, 3);
  const gc1 = await tlpipe(['gc'], { cwd: p.dir });
  assert.match(gc1.stdout, /^Freed 0\.0 MB: 0 artifacts, 0 files, 0 chunk logs, 0 run records removed; 2 runs kept\.$/m);
  const gc2 = await tlpipe(['gc', '--keep-last', '1'], { cwd: p.dir });
  assert.match(gc2.stdout, /^Freed 0\.0 MB: 3 artifacts, 3 files, 0 chunk logs, 1 run records removed; 1 runs kept\.$/m);
  // What the kept run needs is still cached.
  assert.deepEqual((await p.run('--set', 'a=2')).ran, []);
  assert.deepEqual((await p.run()).ran, ['first', 'second', 'third']);
});

test('a cached artifact that was tampered with is detected, reported and recomputed', async () => {
  const p = await project();
  await p.run();
  const { readdir, chmod } = await import('node:fs/promises');
  const objects = path.join(p.dir, '.tlpipe', 'objects');
  for (const prefix of await readdir(objects)) {
    for (const f of await readdir(path.join(objects, prefix))) {
      const file = path.join(objects, prefix, f);
      const text = await readFile(file, 'utf8');
      if (text.startsWith('third=')) {
        await chmod(file, 0o644);
        await writeFile(file, text.replace('3', '4'));
      }
    }
  }
  const r = await p.run();
  assert.deepEqual(r.ran, ['third']);
  assert.match(r.stderr, /warning: Cached file "out.txt" of stage "third" does not match its hash; the artifact was discarded and will be recomputed\./);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), 'third=3\nsecond=2\nfirst=1\n');
});

test('what a run writes is hashed once: its objects and published outputs are remembered by their stat', async () => {
  const p = await project();
  await p.run();
  const { createHash } = await import('node:crypto');
  const { readdir, stat } = await import('node:fs/promises');
  const memo = JSON.parse(await readFile(path.join(p.dir, '.tlpipe', 'state', 'path-hashes.json'), 'utf8')) as Record<string, { stat: string; sha256: string }>;
  const objects = path.join(p.dir, '.tlpipe', 'objects');
  const written = [path.join(p.dir, 'out', 'result.txt')];
  for (const prefix of await readdir(objects)) for (const f of await readdir(path.join(objects, prefix))) written.push(path.join(objects, prefix, f));
  assert.ok(written.length >= 4, `objects and the output: ${written.length}`);
  for (const file of written) {
    const st = await stat(file);
    const known = memo[file];
    assert.ok(known, `${file} is not remembered, so the next run would read it again`);
    // The stat that proves it unchanged, and the hash of what is there now.
    assert.equal(known.stat, `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`);
    assert.equal(known.sha256, createHash('sha256').update(await readFile(file)).digest('hex'));
  }
  assert.deepEqual((await p.run()).ran, []);
});

test('a deleted output is restored from the cache without rerunning', async () => {
  const p = await project();
  await p.run();
  const { rm } = await import('node:fs/promises');
  await rm(path.join(p.dir, 'out'), { recursive: true });
  assert.deepEqual((await p.run()).ran, []);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), 'third=3\nsecond=2\nfirst=1\n');
});

test('extends: a variant file overrides parameters and stage parameters', async () => {
  const p = await project({
    'variant.yaml': 'extends: p.yaml\nname: chain-variant\nparams:\n  b: 20\nstages:\n  third:\n    with: {value: 30}\n',
  });
  await p.run();
  await p.clear();
  const r = await tlpipe(['run', 'variant.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await readFile(p.log, 'utf8')).split('\n').filter(Boolean), ['second', 'third']);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), 'third=30\nsecond=20\nfirst=1\n');
});

test('environment variables with defaults are interpolated', async () => {
  const p = await project({
    'env.yaml': 'tlpipe: 1\nname: env\nparams:\n  v: ${env.TLPIPE_TEST_V:-fallback}\nstages:\n  only:\n    uses: ./steps/count.mjs\n    with: {value: "${v}", out: out/env.txt}\n',
  });
  let r = await tlpipe(['run', 'env.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(path.join(p.dir, 'out/env.txt'), 'utf8'), 'only="fallback"\n');
  r = await tlpipe(['run', 'env.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log, TLPIPE_TEST_V: 'given' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(path.join(p.dir, 'out/env.txt'), 'utf8'), 'only="given"\n');
});
