// Interrupted runs resume from their committed chunks; concurrent runs share
// one store without corrupting it or doing the same work twice.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { startTlpipe, tlpipe } from './support/cli.js';
import { countStepSource } from './support/count-step.js';
import { tempDir } from './support/tmp.js';

const CHUNKS = 12;
const pipeline = `tlpipe: 1
name: slow
stages:
  work:
    uses: ./steps/count.mjs
    with: {value: w, chunks: ${CHUNKS}, chunkDelayMs: 120}
  after:
    uses: ./steps/count.mjs
    inputs: [work]
    with: {value: a, out: out/result.txt}
`;

async function project() {
  const dir = await tempDir({ 'package.json': '{}', 'steps/count.mjs': countStepSource, 'p.yaml': pipeline });
  const log = path.join(dir, 'count.log');
  await writeFile(log, '');
  return { dir, log, lines: async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean) };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function uninterruptedOutput(): Promise<string> {
  const p = await project();
  const r = await tlpipe(['run', 'p.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  assert.equal(r.code, 0, r.stderr);
  return readFile(path.join(p.dir, 'out/result.txt'), 'utf8');
}

for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
  test(`a run killed with ${signal} mid-stage resumes from its committed chunks`, async () => {
    const expected = await uninterruptedOutput();
    const p = await project();
    const child = startTlpipe(['run', 'p.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
    await waitFor(async () => (await p.lines()).includes('work:chunk4'));
    child.kill(signal);
    const first = await child;
    if (signal === 'SIGKILL') assert.equal(first.signal, 'SIGKILL');
    else {
      assert.equal(first.exitCode, signal === 'SIGINT' ? 130 : 143, String(first.stderr));
      assert.match(String(first.stderr), /Interrupted\. Finished stages and committed chunks are kept; resume with:\n {2}tlpipe run p\.yaml/);
    }
    const before = await p.lines();
    const committed = before.filter((l) => l.startsWith('work:chunk')).length;

    const r = await tlpipe(['run', 'p.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
    assert.equal(r.code, 0, r.stderr);
    const after = (await p.lines()).slice(before.length);
    const redone = after.filter((l) => l.startsWith('work:chunk')).map((l) => Number(l.slice('work:chunk'.length)));
    // Only what was not committed is computed again: at most the one chunk in flight.
    assert.ok(redone[0]! >= committed - 1, `resumed at chunk ${redone[0]} after ${committed} started`);
    assert.deepEqual(redone, Array.from({ length: CHUNKS - redone[0]! }, (_, i) => redone[0]! + i));
    assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), expected);
    assert.deepEqual(await readdir(path.join(p.dir, '.tlpipe', 'tmp')), []);
  });
}

test('two runs at once on one store: both succeed, the work is done once', async () => {
  const p = await project();
  const a = startTlpipe(['run', 'p.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  const b = startTlpipe(['run', 'p.yaml'], { cwd: p.dir, env: { COUNT_LOG: p.log } });
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(ra.exitCode, 0, String(ra.stderr));
  assert.equal(rb.exitCode, 0, String(rb.stderr));
  const lines = await p.lines();
  assert.equal(lines.filter((l) => l === 'work').length, 1);
  assert.equal(lines.filter((l) => l === 'after').length, 1);
  assert.equal(lines.filter((l) => l.startsWith('work:chunk')).length, CHUNKS);
  assert.equal(await readFile(path.join(p.dir, 'out/result.txt'), 'utf8'), await uninterruptedOutput());
  const runs = await tlpipe(['runs', '--json'], { cwd: p.dir });
  const statuses = JSON.parse(runs.stdout).map((r: { stages: { status: string }[] }) => r.stages.map((s) => s.status).join(','));
  assert.deepEqual(statuses.sort(), ['cached,cached', 'ran,ran']);
});
