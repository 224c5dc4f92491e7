// The published schema, the fingerprint format, and the exec step.
import { Ajv } from 'ajv';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { pipelineSchema } from '../src/runner/analyze.js';
import { canonicalJson, FINGERPRINT_FORMAT, fingerprintOf, type FingerprintRecord } from '../src/runner/fingerprint.js';
import { withStepRules } from '../src/runner/pipeline-schema.js';
import { builtinSteps } from '../src/steps/index.js';
import { tlpipe } from './support/cli.js';
import { repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

test('schemas/pipeline.schema.json is current with the built-in steps (npm run schema)', () => {
  assert.deepEqual(pipelineSchema(), withStepRules(pipelineSchema(), builtinSteps));
});

test('the example pipelines validate against the published schema, as an editor would check them', async () => {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(pipelineSchema());
  for (const name of ['catsdogs.yaml', 'catsdogs-int8.yaml', 'flowers.yaml', 'exec-demo.yaml']) {
    const text = await readFile(path.join(repoRoot, 'pipelines', name), 'utf8');
    assert.match(text, /^# yaml-language-server: \$schema=\.\.\/schemas\/pipeline\.schema\.json$/m);
    assert.ok(validate(parse(text)), `${name}: ${JSON.stringify(validate.errors)}`);
  }
  // And the editor schema does catch a misspelt step parameter.
  assert.equal(validate(parse('tlpipe: 1\nname: x\nstages:\n  a:\n    uses: exec\n    with: {comand: [ls]}\n')), false);
});

test('tlpipe schema prints the schema; tlpipe steps lists every step type with its parameters', async () => {
  const dir = await tempDir();
  const schema = await tlpipe(['schema'], { cwd: dir });
  assert.deepEqual(JSON.parse(schema.stdout), pipelineSchema());
  const steps = await tlpipe(['steps'], { cwd: dir });
  for (const s of builtinSteps) assert.match(steps.stdout, new RegExp(`^${s.type.replace('.', '\\.')} \\(v${s.version}\\): `, 'm'));
  assert.match(steps.stdout, /^ {2}lr: number = 0\.001 {2}Learning rate\.$/m);
  assert.match(steps.stdout, /^ {2}inputs: head, features, dataset$/m);
});

test('one literal fingerprint, pinned: changing how fingerprints are made must be deliberate', () => {
  const record: FingerprintRecord = {
    format: FINGERPRINT_FORMAT,
    step: { type: 'head.train', version: 1 },
    params: { lr: 0.001, epochs: 5, betas: [0.9, 0.999], nested: { b: true, a: null } },
    inputs: { features: 'f'.repeat(64), head: 'a'.repeat(64) },
    dependencies: null,
  };
  assert.equal(canonicalJson({ b: 1, a: [2, { d: 1, c: 2 }] }), '{"a":[2,{"c":2,"d":1}],"b":1}');
  // = sha256 of the canonical JSON, checked independently with sha256sum.
  // Format 2: dataset paths enter keys relative to the project (or by content
  // alone outside it) and the runtime builds enter the keys that depend on them.
  assert.equal(FINGERPRINT_FORMAT, 2);
  assert.equal(fingerprintOf(record), '1ae988c813d61fd8109696154832a7d82217f25f0a46b60070379d0ab2a0a74b');
});

const execPipeline = (stage: string) => `tlpipe: 1\nname: e\nparams:\n  evil: "; touch pwned"\nstages:\n  a:\n    uses: exec\n${stage}`;

test('exec: arguments go to the program as they are, never through a shell', async () => {
  const dir = await tempDir({
    'package.json': '{}',
    'p.yaml': execPipeline(`    with:\n      command: [node, -e, "require('fs').writeFileSync('out.txt', process.argv[1])", "\${evil} $(touch pwned2)"]\n      outs: [out.txt]\n`),
  });
  const r = await tlpipe(['run', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(path.join(dir, 'out.txt'), 'utf8'), '; touch pwned $(touch pwned2)');
  assert.equal(existsSync(path.join(dir, 'pwned')), false);
  assert.equal(existsSync(path.join(dir, 'pwned2')), false);
});

test('exec: a failing command fails its stage with its exit code and the end of its stderr', async () => {
  const dir = await tempDir({
    'package.json': '{}',
    'p.yaml': execPipeline(`    with:\n      command: [node, -e, "console.error('reading input.csv: no such column'); process.exit(3)"]\n  b:\n    uses: exec\n    inputs: [a]\n    with: {command: [node, -e, "0"]}\n`),
  });
  const r = await tlpipe(['run', 'p.yaml', '--json'], { cwd: dir });
  assert.equal(r.code, 1);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual(
    summary.stages.map((s: { name: string; status: string }) => `${s.name}:${s.status}`),
    ['a:failed', 'b:skipped'],
  );
  assert.equal(summary.stages[0].error, `"node -e console.error('reading input.csv: no such column'); process.exit(3)" failed with exit code 3:\nreading input.csv: no such column`);
});

test('exec: a shell only when asked; an output outside the project is refused', async () => {
  let dir = await tempDir({ 'package.json': '{}', 'p.yaml': execPipeline('    with:\n      shell: "echo one | tr o 0 > shell.txt"\n      outs: [shell.txt]\n') });
  let r = await tlpipe(['run', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await readFile(path.join(dir, 'shell.txt'), 'utf8'), '0ne\n');

  dir = await tempDir({ 'package.json': '{}', 'p.yaml': execPipeline('    with:\n      command: [node, -e, "0"]\n      outs: [../escape.txt]\n') });
  r = await tlpipe(['run', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 2, 'refused at validation');
  assert.match(r.stderr, /p\.yaml:\d+:\d+ The output of stage "a" would be written to .*escape\.txt, outside the project folder .*Outputs stay inside the project/);

  dir = await tempDir({ 'package.json': '{}', 'p.yaml': execPipeline('    with:\n      command: [node]\n      shell: "ls"\n') });
  r = await tlpipe(['validate', 'p.yaml'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /These keys cannot be used together in stage "a": \["command"\]/);
});

test('a secret in stage parameters never reaches the store, yet changing it reruns the stage', async () => {
  const pipeline = (token: string) =>
    `tlpipe: 1\nname: s\nstages:\n  a:\n    uses: exec\n    with:\n      command: [node, -e, "0"]\n      env: {API_TOKEN: "${token}"}\n`;
  const dir = await tempDir({ 'package.json': '{}', 'p.yaml': pipeline('hunter2-secret-value') });
  let r = await tlpipe(['run', 'p.yaml', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const { readdir } = await import('node:fs/promises');
  const storeText = async () => {
    let all = '';
    for (const sub of ['artifacts', 'runs']) {
      for (const f of await readdir(path.join(dir, '.tlpipe', sub))) all += await readFile(path.join(dir, '.tlpipe', sub, f), 'utf8');
    }
    return all;
  };
  assert.doesNotMatch(await storeText(), /hunter2/);
  assert.match(await storeText(), /"API_TOKEN": ?"sha256:[0-9a-f]{64}"/);
  await (await import('node:fs/promises')).writeFile(path.join(dir, 'p.yaml'), pipeline('another-secret-value'));
  r = await tlpipe(['run', 'p.yaml', '--json'], { cwd: dir });
  assert.equal(JSON.parse(r.stdout).stages[0].status, 'ran');
  assert.doesNotMatch(await storeText(), /another-secret/);
});
