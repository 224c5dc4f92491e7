// A command line that answers at once: --version and --help load no command
// module; validators are compiled once and kept; files and cached objects
// whose stat proves them unchanged are not read again.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { PathHasher } from '../src/runner/path-hasher.js';
import { hashFile } from '../src/runner/store.js';
import { cliPath } from './support/cli.js';
import { repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

/**
 * The modules a command loaded: from tsc's per-file output directly, and from
 * the start-up bundle (dist/cli/) by the `// dist/src/...` and
 * `// node_modules/...` markers esbuild puts before each module it bundles.
 */
async function modulesLoaded(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const log = path.join(await tempDir(), 'modules.log');
  const r = await execa('node', ['--import', path.join(repoRoot, 'test/support/module-log.mjs'), cliPath, ...args], {
    cwd: options.cwd,
    env: { CI: 'true', ...options.env, TLPIPE_MODULE_LOG: log },
    reject: false,
  });
  assert.equal(r.exitCode, 0, r.stderr);
  const ours = new Set<string>();
  const libraries = new Set<string>();
  for (const url of new Set((await readFile(log, 'utf8')).split('\n').filter(Boolean))) {
    if (url.includes('/node_modules/')) libraries.add(url.replace(/^.*\/node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1'));
    else if (url.includes('/dist/src/')) ours.add(url.replace(/^.*\/dist\/src\//, ''));
    else if (url.includes('/dist/cli/')) {
      const text = await readFile(new URL(url), 'utf8');
      for (const m of text.matchAll(/^\/\/ dist\/src\/(\S+)$/gm)) ours.add(m[1]!);
      for (const m of text.matchAll(/^\/\/ node_modules\/((@[^/]+\/)?[^/\s]+)/gm)) libraries.add(m[1]!);
    }
  }
  return { ours: [...ours].sort(), libraries: [...libraries].sort() };
}

test('the command line runs from the start-up bundle, built after the last compile', async () => {
  const bundle = await stat(path.join(repoRoot, 'dist', 'cli', 'cli.js'));
  const compiled = await stat(path.join(repoRoot, 'dist', '.tsbuildinfo'));
  assert.ok(bundle.mtimeMs >= compiled.mtimeMs, 'dist/cli is older than the last tsc output: run `npm run build`');
  const log = path.join(await tempDir(), 'modules.log');
  const r = await execa('node', ['--import', path.join(repoRoot, 'test/support/module-log.mjs'), cliPath, '--version'], { env: { TLPIPE_MODULE_LOG: log }, reject: false });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(await readFile(log, 'utf8'), /\/dist\/cli\/cli\.js/);
});

test('every worker thread a module starts by relative URL has its bundled twin beside the bundle', async () => {
  const src = path.join(repoRoot, 'dist', 'src');
  const workers = new Set<string>();
  for (const rel of readdirSync(src, { recursive: true }) as string[]) {
    if (!rel.endsWith('.js')) continue;
    for (const m of (await readFile(path.join(src, rel), 'utf8')).matchAll(/new Worker\(new URL\('\.\/([\w.-]+\.js)', import\.meta\.url\)/g)) workers.add(m[1]!);
  }
  assert.ok(workers.has('inference-worker.js') && workers.has('loader-worker.js'), [...workers].join(', '));
  for (const w of workers) assert.ok(readdirSync(path.join(repoRoot, 'dist', 'cli')).includes(w), `dist/cli/${w} is missing: the bundle cannot start that worker`);
});

test('--version and --help answer without loading the commands or any library', async () => {
  for (const flag of ['--version', '--help']) {
    const { ours, libraries } = await modulesLoaded([flag]);
    assert.deepEqual(ours.filter((m) => m !== 'bin.cjs'), ['cli.js', 'failure.js', 'runner/diagnostic.js', 'runner/errors.js'], flag);
    assert.deepEqual(libraries, [], `${flag} loaded ${libraries.join(', ')}`);
  }
});

test('a fully cached run and its status load neither the image decoder nor onnxruntime', async () => {
  const { default: sharp } = await import('sharp');
  const dir = await tempDir({ 'package.json': '{}' });
  for (const [cls, colour] of [['cat', '#c33'], ['dog', '#33c']] as const) {
    for (let i = 0; i < 6; i++) {
      const file = path.join(dir, 'data', 'train', `${cls}.${i}.jpg`);
      await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(file), { recursive: true }));
      await sharp({ create: { width: 40 + i, height: 32, channels: 3, background: colour } }).jpeg().toFile(file);
    }
  }
  await writeFile(
    path.join(dir, 'p.yaml'),
    'tlpipe: 1\nname: cached\nstages:\n  dataset:\n    uses: images.dataset\n    with: {root: data, layout: auto, labelRule: {type: contains, classes: [cat, dog]}}\n  transform:\n    uses: images.transform\n    with: {resize: 32, centerCrop: 28}\n',
  );
  const cache = await tempDir();
  const env = { XDG_CACHE_HOME: cache };
  const { tlpipe } = await import('./support/cli.js');
  const first = await tlpipe(['run', 'p.yaml'], { cwd: dir, env });
  assert.equal(first.code, 0, first.stderr);
  for (const command of ['run', 'status']) {
    const { libraries } = await modulesLoaded([command, 'p.yaml'], { cwd: dir, env });
    for (const heavy of ['sharp', 'onnxruntime-node', '@img/sharp-linux-x64']) {
      assert.ok(!libraries.includes(heavy), `a cached ${command} loaded ${heavy} (${libraries.join(', ')})`);
    }
  }
});

test('validators are compiled once: a later process evaluates the kept code without ajv\'s compiler', async () => {
  const cache = await tempDir();
  const probe = `
    import { createRequire } from 'node:module';
    const { compileSchema } = await import(${JSON.stringify(path.join(repoRoot, 'dist/src/runner/compiled-schema.js'))});
    const v = compileSchema({ type: 'object', additionalProperties: false, properties: { n: { type: 'integer', default: 3 } } }, { allErrors: true, useDefaults: true, verbose: true });
    const data = {};
    const bad = { m: 1 };
    const require = createRequire(${JSON.stringify(path.join(repoRoot, 'dist/src/runner/compiled-schema.js'))});
    console.log(JSON.stringify({ ok: v(data), data, bad: v(bad), errors: v.errors.map((e) => e.keyword + ' ' + e.params.additionalProperty), compiler: Object.keys(require.cache).some((k) => k.includes('/ajv/dist/compile/')) }));
  `;
  const run = () => execa('node', ['--input-type=module', '-e', probe], { env: { XDG_CACHE_HOME: cache }, reject: false });
  const first = await run();
  assert.equal(first.exitCode, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout), { ok: true, data: { n: 3 }, bad: false, errors: ['additionalProperties m'], compiler: true });
  const kept = readdirSync(path.join(cache, 'tlpipe', 'validators'));
  assert.equal(kept.length, 1);
  assert.match(kept[0]!, /^[0-9a-f]{64}\.cjs$/);

  const second = await run();
  assert.deepEqual(JSON.parse(second.stdout), { ok: true, data: { n: 3 }, bad: false, errors: ['additionalProperties m'], compiler: false });

  // A damaged cache file is compiled again, not trusted.
  await writeFile(path.join(cache, 'tlpipe', 'validators', kept[0]!), 'this is not javascript {');
  const third = await run();
  assert.deepEqual(JSON.parse(third.stdout).errors, ['additionalProperties m']);
});

test('a file whose stat is unchanged is not read again; a change restored to the old mtime is still seen', async () => {
  const dir = await tempDir({ 'a.bin': 'hello world', 'folder/x.jpg': 'x', 'folder/y.jpg': 'y' });
  const reads: string[] = [];
  const hasher = new PathHasher(path.join(dir, 'memo.json'), async (f) => {
    reads.push(path.basename(f));
    return hashFile(f);
  });
  const file = path.join(dir, 'a.bin');
  const first = await hasher.hashFile(file);
  await hasher.hashPath(path.join(dir, 'folder'));
  assert.deepEqual(reads.sort(), ['a.bin', 'x.jpg', 'y.jpg']);
  reads.length = 0;
  assert.equal(await hasher.hashFile(file), first);
  await hasher.hashPath(path.join(dir, 'folder'));
  assert.deepEqual(reads, [], 'unchanged files were read again');

  // Same size, and the old mtime put back: only the ctime tells.
  const before = await stat(file);
  await writeFile(file, 'HELLO WORLD');
  await utimes(file, before.atime, before.mtime);
  const changed = await hasher.hashFile(file);
  assert.deepEqual(reads, ['a.bin']);
  assert.notEqual(changed, first);
  assert.equal(changed, await hashFile(file));
});

test('a cached object edited in place with its mtime put back is still caught by the cached run that trusts stats', async () => {
  const { countStepSource } = await import('./support/count-step.js');
  const { tlpipe } = await import('./support/cli.js');
  const dir = await tempDir({
    'package.json': '{}',
    'steps/count.mjs': countStepSource,
    'count.log': '',
    'p.yaml': 'tlpipe: 1\nname: one\nstages:\n  only:\n    uses: ./steps/count.mjs\n    with: {value: 1}\n',
  });
  const env = { COUNT_LOG: path.join(dir, 'count.log') };
  const ran = async () => (await readFile(env.COUNT_LOG, 'utf8')).split('\n').filter(Boolean);
  assert.equal((await tlpipe(['run', 'p.yaml'], { cwd: dir, env })).code, 0);
  assert.equal((await tlpipe(['run', 'p.yaml'], { cwd: dir, env })).code, 0);
  assert.deepEqual(await ran(), ['only'], 'the second run was not cached');

  const objects = path.join(dir, '.tlpipe', 'objects');
  const files = (readdirSync(objects, { recursive: true }) as string[]).map((f) => path.join(objects, f)).filter((f) => !readdirSync(path.dirname(f)).includes(path.basename(f)) || !f.endsWith('/'));
  const object = (await Promise.all(files.map(async (f) => ((await stat(f)).isFile() ? f : null)))).find((f) => f !== null)!;
  const before = await stat(object);
  const bytes = await readFile(object);
  bytes[0] = bytes[0]! ^ 0x20;
  const { chmod } = await import('node:fs/promises');
  await chmod(object, 0o644);
  await writeFile(object, bytes);
  await utimes(object, before.atime, before.mtime);
  const r = await tlpipe(['run', 'p.yaml'], { cwd: dir, env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /does not match its hash; the artifact was discarded and will be recomputed/);
  assert.deepEqual(await ran(), ['only', 'only']);
});
