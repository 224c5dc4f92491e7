// One failure model: an expected failure is shown as its message; an
// unexpected exception is a bug, named as one with its stage, its stack shown
// under --verbose; the run record keeps the failure as a value with its reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { tempDir } from './support/tmp.js';

const step = (body: string) => `export default {
  type: 'probe',
  version: 1,
  paramsSchema: { type: 'object' },
  async run(ctx) { ${body} },
};
`;

const pipeline = (uses: string) => `tlpipe: 1\nname: f\nstages:\n  a:\n    uses: ${uses}\n  b:\n    uses: exec\n    inputs: [a]\n    with: {command: [node, -e, "0"]}\n`;

async function lastRecord(dir: string) {
  const r = await tlpipe(['show', 'last'], { cwd: dir });
  return JSON.parse(r.stdout) as { stages: { name: string; status: string; error?: string; failure?: { reason: string; message: string; stack?: string } }[] };
}

test('a user step that throws ctx.fail(...) fails with its message, as an expected failure', async () => {
  const dir = await tempDir({ 'package.json': '{}', 's.mjs': step("throw ctx.fail('the table is empty: give it at least one row');"), 'p.yaml': pipeline('./s.mjs') });
  const r = await tlpipe(['run', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^✖ a failed: the table is empty: give it at least one row$/m);
  const a = (await lastRecord(dir)).stages.find((s) => s.name === 'a')!;
  assert.deepEqual(a.failure, { reason: 'data', message: 'the table is empty: give it at least one row' });
  assert.equal((await lastRecord(dir)).stages.find((s) => s.name === 'b')!.status, 'skipped');
});

test('an unexpected exception is a bug: named with its step, the stack only under --verbose', async () => {
  const dir = await tempDir({ 'package.json': '{}', 's.mjs': step('const table = undefined; return table.rows;'), 'p.yaml': pipeline('./s.mjs') });
  const r = await tlpipe(['run', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    /^✖ a failed: step "\.\/s\.mjs" failed unexpectedly: Cannot read properties of undefined \(reading 'rows'\) \(a bug in the step or in tlpipe: --verbose shows where\)$/m,
  );
  assert.doesNotMatch(r.stdout, /at Object\.run/);
  const a = (await lastRecord(dir)).stages.find((s) => s.name === 'a')!;
  assert.equal(a.failure?.reason, 'bug');
  assert.match(a.failure?.stack ?? '', /^in stage "a": TypeError: Cannot read properties of undefined \(reading 'rows'\)\n\s+at Object\.run \(file:.*s\.mjs:5:/);

  const verbose = await tlpipe(['run', 'p.yaml', '--verbose'], { cwd: dir });
  assert.equal(verbose.code, 1);
  assert.match(verbose.stdout, /^✖ a failed: step "\.\/s\.mjs" failed unexpectedly: Cannot read properties of undefined \(reading 'rows'\)\nin stage "a": TypeError: [^\n]*\n\s+at Object\.run \(file:.*s\.mjs:5:/m);
});

test('a library expected failure (a file that is not ONNX) is shown as the library says, not as a bug', async () => {
  const dir = await tempDir({ 'package.json': '{}', 'm.onnx': 'not a model\n', 'p.yaml': 'tlpipe: 1\nname: m\nstages:\n  backbone:\n    uses: backbone.load\n    with: {model: ./m.onnx}\n' });
  const r = await tlpipe(['run', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 1);
  const line = r.stdout.split('\n').find((l) => l.startsWith('✖ backbone failed: '));
  assert.ok(line, r.stdout);
  assert.doesNotMatch(line, /unexpectedly/);
  const record = await lastRecord(dir);
  assert.equal(record.stages[0]!.failure?.reason, 'model');
});
