// Bad pipeline files get every problem reported at once, as exact text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { countStepSource } from './support/count-step.js';
import { tempDir } from './support/tmp.js';

async function validate(files: Record<string, string>, file = 'p.yaml', extra: string[] = []) {
  const dir = await tempDir({ 'package.json': '{}', ...files });
  return tlpipe(['validate', file, ...extra], { cwd: dir });
}

test('every problem is reported with file:line:col, the line, an underline and a did-you-mean', async () => {
  const r = await validate({
    'p.yaml': `tlpipe: 1
name: demo
params:
  lr: 0.1
stages:
  a:
    uses: exce
    with: {command: [echo, hi]}
  b:
    uses: exec
    inputs: [c]
    wiht: {}
  c:
    uses: exec
    inputs: [b, z]
    with:
      command: [echo, "\${lrr}"]
      timeout: -1
      deps: deps.txt
`,
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:7:11 Unknown step type "exce". Did you mean "exec"?
        uses: exce
              ~~~~

❌ p.yaml:9:3 Missing required key "command" in stage "b".
      b:
      ~

❌ p.yaml:11:13 Stages form a cycle: b → c → b. A stage can only consume stages that come before it.
        inputs: [c]
                ~~~

❌ p.yaml:12:5 Unknown key "wiht". Did you mean "with"?
        wiht: {}
        ~~~~

❌ p.yaml:15:17 Stage "c" consumes "z", which is not a stage of this pipeline. Did you mean "a"?
        inputs: [b, z]
                    ~

❌ p.yaml:17:23 Unknown parameter "lrr" in "\${lrr}". Did you mean "lr"?
          command: [echo, "\${lrr}"]
                          ~~~~~~~~

❌ p.yaml:18:16 Expected a value > 0, but was -1.
          timeout: -1
                   ~~

❌ p.yaml:19:13 Expected an array, but was a string ("deps.txt").
          deps: deps.txt
                ~~~~~~~~

8 problems found.`,
  );
});

test('a YAML syntax error is reported at its position', async () => {
  const r = await validate({ 'p.yaml': 'tlpipe: 1\nname: x\nstages:\n  a:\n    uses: exec\n   with: {}\n' });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:6:4 YAML syntax error: All mapping items must start at the same column
       with: {}
       ~

1 problem found.`,
  );
});

test('the top level: unknown keys, wrong types, missing keys, the format version', async () => {
  const r = await validate({ 'p.yaml': 'tlpipe: 2\nname: [x]\nstagse:\n  a: {uses: exec}\n' });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:1:1 Missing required key "stages".
    tlpipe: 2
    ~~~~~~~~~

❌ p.yaml:1:9 Expected 1, but was 2.
    tlpipe: 2
            ~

❌ p.yaml:2:7 Expected a string, but was an array.
    name: [x]
          ~~~

❌ p.yaml:3:1 Unknown key "stagse". Did you mean "stages"?
    stagse:
    ~~~~~~

4 problems found.`,
  );
});

test('--set with an unknown key, and a value of the wrong type, point at the flag', async () => {
  const files = { 'p.yaml': 'tlpipe: 1\nname: x\nparams: {timeout: 5}\nstages:\n  a:\n    uses: exec\n    with: {command: [echo], timeout: "${timeout}"}\n' };
  let r = await validate(files, 'p.yaml', ['--set', 'timout=3']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `❌ --set:1:1 "timout" is neither a parameter nor a stage of this pipeline. Did you mean "timeout"?\n    timout=3\n    ~~~~~~\n\n1 problem found.`);
  r = await validate(files, 'p.yaml', ['--set', 'timeout=soon']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `❌ p.yaml:7:38 Expected a number, but was a string ("soon").\n        with: {command: [echo], timeout: "\${timeout}"}\n                                         ~~~~~~~~~~~~\n\n1 problem found.`);
  r = await validate(files, 'p.yaml', ['--set', 'a.timeout=.nan']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^❌ --set:1:11 Expected a finite number, but was NaN\./);
});

test('a missing pipeline file and a missing base file', async () => {
  let r = await validate({}, 'nope.yaml');
  assert.equal(r.code, 64);
  assert.match(r.stderr, /^Pipeline file .*nope\.yaml not found\. Check the path \(it is relative to the current folder\)\.$/);
  r = await validate({ 'p.yaml': 'extends: base.yaml\n' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^❌ p\.yaml:1:10 Cannot extend "base\.yaml": .*base\.yaml not found\./);
});

test('user steps: unknown input names, a module that fails to load, one without a schema', async () => {
  const r = await validate({
    'steps/count.mjs': countStepSource,
    'steps/broken.mjs': 'export default {;\n',
    'steps/noschema.mjs': 'export default { type: "x", version: 1, run: async () => ({}) };\n',
    'p.yaml': `tlpipe: 1
name: x
stages:
  a:
    uses: ./steps/broken.mjs
  b:
    uses: ./steps/noschema.mjs
  c:
    uses: ./steps/missing.mjs
  d:
    uses: ./steps/count.mjs
    with: {valeu: 1}
`,
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr.replace(/\(looked for [^)]*\)/, '(looked for …)'),
    `❌ p.yaml:5:11 Step module "./steps/broken.mjs" failed to load: Unexpected token ';'
        uses: ./steps/broken.mjs
              ~~~~~~~~~~~~~~~~~~

❌ p.yaml:7:11 Step module "./steps/noschema.mjs" is missing paramsSchema (a JSON Schema object). See docs/steps.md.
        uses: ./steps/noschema.mjs
              ~~~~~~~~~~~~~~~~~~~~

❌ p.yaml:9:11 Step module "./steps/missing.mjs" not found (looked for …).
        uses: ./steps/missing.mjs
              ~~~~~~~~~~~~~~~~~~~

❌ p.yaml:12:12 Unknown key "valeu" in stage "d". Did you mean "value"?
        with: {valeu: 1}
               ~~~~~

4 problems found.`,
  );
});

test('an unwritable cache folder is a clear error with its own exit code', async () => {
  const dir = await tempDir({ 'package.json': '{}', 'p.yaml': 'tlpipe: 1\nname: x\nstages:\n  a:\n    uses: exec\n    with: {command: [echo, hi]}\n', 'cache': 'a file, not a folder' });
  const r = await tlpipe(['run', 'p.yaml', '--cache-dir', 'cache'], { cwd: dir });
  assert.equal(r.code, 73);
  assert.match(r.stderr, /^Cannot use .*cache\/objects while opening the cache folder .*: a file stands where a folder is needed\. Choose another folder with --cache-dir or TLPIPE_CACHE_DIR\.$/);
});
