// The first run of a new user: `null` removes a key, everything checkable is
// checked before any work, standard dataset layouts are recognised, and a
// stage with nothing to do is skipped while the run succeeds.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { detectLayout, resolveAutoLayout } from '../src/images/layout-detect.js';
import { tlpipe } from './support/cli.js';
import { countStepSource } from './support/count-step.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { tempDir, writeFiles } from './support/tmp.js';

const chain = `tlpipe: 1
name: chain
params:
  a: 1
stages:
  first:
    uses: ./steps/count.mjs
    with: {value: "\${a}", out: out/first.txt}
  second:
    uses: ./steps/count.mjs
    inputs: [first]
    with: {value: 2, out: out/second.txt}
`;

async function countProject(files: Record<string, string> = {}) {
  const dir = await tempDir({ 'package.json': '{}', 'steps/count.mjs': countStepSource, 'p.yaml': chain, 'count.log': '', ...files });
  const env = { COUNT_LOG: path.join(dir, 'count.log') };
  const ran = async () => (await readFile(env.COUNT_LOG, 'utf8')).split('\n').filter(Boolean);
  return { dir, env, ran };
}

describe('null removes a key', () => {
  test('--set STAGE.KEY=null removes a stage parameter', async () => {
    const p = await countProject();
    const r = await tlpipe(['run', 'p.yaml', '--set', 'second.out=null'], { cwd: p.dir, env: p.env });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(path.join(p.dir, 'out/first.txt')));
    assert.equal(existsSync(path.join(p.dir, 'out/second.txt')), false, 'second.out was not removed');
  });

  test('KEY: null in a file that extends another removes what it inherits', async () => {
    const p = await countProject({ 'variant.yaml': 'extends: p.yaml\nname: variant\nstages:\n  second:\n    with: {out: null}\n' });
    const r = await tlpipe(['run', 'variant.yaml'], { cwd: p.dir, env: p.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(path.join(p.dir, 'out/second.txt')), false);
    assert.deepEqual(await p.ran(), ['first', 'second']);
  });
});

describe('checks before the work', () => {
  test('an output outside the project is refused at validation, before any stage runs', async () => {
    const p = await countProject({
      'x.yaml': `tlpipe: 1
name: x
stages:
  first:
    uses: ./steps/count.mjs
    with: {value: 1}
  write:
    uses: exec
    inputs: [first]
    with:
      command: [node, -e, "require('fs').writeFileSync('../outside.txt', 'x')"]
      outs: [../outside.txt]
`,
    });
    const r = await tlpipe(['run', 'x.yaml'], { cwd: p.dir, env: p.env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /x\.yaml:12:\d+ The output of stage "write" would be written to .*outside\.txt, outside the project folder/);
    assert.deepEqual(await p.ran(), [], 'a stage ran before the check');
    assert.equal(existsSync(path.join(path.dirname(p.dir), 'outside.txt')), false);
  });

  test('an explicit absolute --set out=DIR outside the project is refused at validation too, naming each output', async () => {
    const dir = await tempDir({ 'package.json': '{}', 'data/cat/1.jpg': '', 'data/dog/1.jpg': '' });
    await mkdir(path.join(dir, 'pipelines'));
    await copyFile(path.join(repoRoot, 'pipelines/flowers.yaml'), path.join(dir, 'pipelines/flowers.yaml'));
    const outside = path.join(path.dirname(dir), 'elsewhere');
    const r = await tlpipe(['validate', 'pipelines/flowers.yaml', '--set', 'data=data', '--set', `out=${outside}`], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`The CSV of stage "predictions" would be written to ${outside}/submission\\.csv, outside the project folder`));
    assert.match(r.stderr, /The model file of stage "model" would be written to .*elsewhere\/model\.onnx/);
  });

  test('a missing dataset folder and a missing local model are reported at validation, together', async () => {
    const dir = await tempDir({ 'package.json': '{}' });
    await mkdir(path.join(dir, 'pipelines'));
    await copyFile(path.join(repoRoot, 'pipelines/flowers.yaml'), path.join(dir, 'pipelines/flowers.yaml'));
    const r = await tlpipe(['status', 'pipelines/flowers.yaml', '--set', 'data=nowhere', '--set', 'backbone=models/none.onnx'], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`The dataset folder of stage "dataset", ${path.join(dir, 'nowhere')}, does not exist`));
    assert.match(r.stderr, new RegExp(`The model file of stage "backbone", ${path.join(dir, 'models/none.onnx')}, does not exist`));
  });
});

describe('layout detection', () => {
  const cases: { name: string; files: string[]; kind: string; spec: Record<string, unknown> }[] = [
    {
      name: 'ImageFolder train/val, no test',
      files: ['train/ants/1.jpg', 'train/bees/1.jpg', 'val/ants/2.jpg', 'val/bees/2.jpg'],
      kind: 'imagefolder',
      spec: { layout: 'folders', train: 'train', val: 'val' },
    },
    {
      name: 'ImageFolder train/val/test',
      files: ['train/ants/1.jpg', 'train/bees/1.jpg', 'val/ants/2.jpg', 'test/9.jpg'],
      kind: 'imagefolder',
      spec: { layout: 'folders', train: 'train', val: 'val', test: 'test' },
    },
    {
      name: 'class folders without a split',
      files: ['roses/a.jpg', 'tulips/b.png', 'daisy/c.jpg', 'README.txt'],
      kind: 'class-folders',
      spec: { layout: 'folders', train: '.', classes: ['daisy', 'roses', 'tulips'] },
    },
    {
      name: "Kaggle's file names",
      files: ['train/cat.0.jpg', 'train/dog.0.jpg', 'test1/1.jpg'],
      kind: 'kaggle',
      spec: { layout: 'filename', train: 'train', test: 'test1' },
    },
    {
      name: 'PetImages',
      files: ['PetImages/Cat/0.jpg', 'PetImages/Dog/0.jpg', 'PetImages/Cat/Thumbs.db', 'readme[1].txt'],
      kind: 'petimages',
      spec: { layout: 'folders', train: 'PetImages' },
    },
    {
      name: 'a CSV manifest',
      files: ['images/a.jpg', 'images/b.jpg', 'labels.csv'],
      kind: 'csv',
      spec: { layout: 'csv', manifest: 'labels.csv' },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const dir = await tempDir(Object.fromEntries(c.files.map((f) => [f, f.endsWith('.csv') ? 'path,label\nimages/a.jpg,x\nimages/b.jpg,y\n' : ''])));
      const found = await detectLayout(dir);
      assert.equal(found.kind, c.kind, found.description);
      const abs = Object.fromEntries(
        Object.entries(c.spec).map(([k, v]) => [k, typeof v === 'string' && k !== 'layout' ? path.resolve(dir, v) : v]),
      );
      const { labelRule: _rule, ...spec } = found.spec as unknown as Record<string, unknown>;
      assert.deepEqual(spec, abs);
    });
  }

  test('a folder with no images says which layouts it expects', async () => {
    const dir = await tempDir({ 'notes/readme.txt': 'x' });
    await assert.rejects(detectLayout(dir), /cannot tell how the images in .* are laid out\. Expected one of: train\/<class>\//);
  });

  test('layout auto keeps the split, seed, limits and label rule of the stage', async () => {
    const dir = await tempDir({ 'train/cat.1.jpg': '', 'train/dog.1.jpg': '' });
    const rule = { type: 'contains' as const, classes: ['cat', 'dog'], otherwise: 'dog' };
    const { spec } = await resolveAutoLayout({ layout: 'auto', root: '.', valFraction: 0.3, seed: 7, maxPixels: 99, labelRule: rule }, dir);
    assert.deepEqual(spec, { layout: 'filename', train: path.join(dir, 'train'), labelRule: rule, valFraction: 0.3, seed: 7, maxPixels: 99 });
  });
});

// End to end on real photos with the shipped pipeline, one --set per layout.
describe('the shipped pipeline on each layout', { skip: needsFixtures }, () => {
  const env = { TLPIPE_MODELS: fixture('models') };
  const photo = (cls: 'cat' | 'dog', i: number) => fixture('datasets', 'catsdogs-2k', 'train', `${cls}.${i}.jpg`);
  async function project(): Promise<string> {
    const dir = await tempDir({ 'package.json': '{}' });
    await mkdir(path.join(dir, 'pipelines'));
    await copyFile(path.join(repoRoot, 'pipelines/flowers.yaml'), path.join(dir, 'pipelines/flowers.yaml'));
    return dir;
  }
  async function link(dir: string, names: (i: number) => string, cls: 'cat' | 'dog', from: number, n: number) {
    for (let i = from; i < from + n; i++) {
      const to = path.join(dir, names(i));
      await mkdir(path.dirname(to), { recursive: true });
      await symlink(photo(cls, i), to);
    }
  }
  interface Summary {
    status: string;
    stages: { name: string; status: string; note?: string }[];
    metrics: Record<string, Record<string, number>>;
  }
  async function run(dir: string, data: string): Promise<{ summary: Summary; stderr: string; stdout: string }> {
    const r = await tlpipe(['run', 'pipelines/flowers.yaml', '--set', `data=${data}`, '--set', 'epochs=3', '--json'], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    return { summary: JSON.parse(r.stdout) as Summary, stderr: r.stderr, stdout: r.stdout };
  }

  test('ImageFolder train/ and val/ without test/: predictions are skipped with a reason, the run succeeds', async () => {
    const dir = await project();
    for (const cls of ['cat', 'dog'] as const) {
      await link(dir, (i) => `data/train/${cls}/${i}.jpg`, cls, 0, 8);
      await link(dir, (i) => `data/val/${cls}/${i}.jpg`, cls, 8, 3);
    }
    const { summary, stderr } = await run(dir, 'data');
    assert.equal(summary.status, 'succeeded');
    const predictions = summary.stages.find((s) => s.name === 'predictions')!;
    assert.equal(predictions.status, 'skipped');
    assert.equal(predictions.note, 'the dataset has no test images to predict (give it a test folder)');
    assert.match(stderr, /dataset: ImageFolder layout: .*data\/train\/<class>\/ \(2 classes\), validation .*data\/val\n/);
    assert.match(stderr, /- predictions: skipped: the dataset has no test images to predict/);
    assert.equal(summary.metrics.evaluate!.count, 6);
    assert.ok(existsSync(path.join(dir, 'out/flowers/model.onnx')));
  });

  test('class folders with no split, PetImages with unreadable files, a CSV manifest', async () => {
    const dir = await project();
    // Class folders: a seeded stratified split holds out 20 %.
    for (const cls of ['cat', 'dog'] as const) await link(dir, (i) => `folders/${cls}/${i}.jpg`, cls, 0, 10);
    // PetImages: capitalised class folders, an empty file, a truncated JPEG, Thumbs.db.
    await link(dir, (i) => `pets/PetImages/Cat/${i}.jpg`, 'cat', 0, 10);
    await link(dir, (i) => `pets/PetImages/Dog/${i}.jpg`, 'dog', 0, 10);
    await writeFiles(dir, { 'pets/PetImages/Cat/666.jpg': '', 'pets/PetImages/Dog/Thumbs.db': 'x' });
    await copyFile(fixture('images', 'truncated.jpg'), path.join(dir, 'pets/PetImages/Dog/11702.jpg'));
    // CSV manifest.
    await link(dir, (i) => `csv/img/c${i}.jpg`, 'cat', 0, 10);
    await link(dir, (i) => `csv/img/d${i}.jpg`, 'dog', 0, 10);
    const rows = Array.from({ length: 10 }, (_, i) => `img/c${i}.jpg,cat\nimg/d${i}.jpg,dog`).join('\n');
    await writeFile(path.join(dir, 'csv/labels.csv'), `path,label\n${rows}\n`);

    const folders = await run(dir, 'folders');
    assert.match(folders.stderr, /dataset: class folders: .*folders\/<class>\/ \(2 classes, no split\)/);
    assert.match(folders.stderr, /dataset: train 16 \(cat 8, dog 8\), validation 4 \(cat 2, dog 2\), test 0/);

    const pets = await run(dir, 'pets');
    assert.match(pets.stderr, /dataset: PetImages layout: .*PetImages\/<class>\/ \(Cat, Dog\)/);
    assert.match(pets.stderr, /dataset warning: 2 unreadable image\(s\) skipped:/);
    assert.match(pets.stderr, /PetImages\/Cat\/666\.jpg: /);
    assert.match(pets.stderr, /PetImages\/Dog\/11702\.jpg: /);
    assert.equal(pets.summary.metrics.dataset!.skipped, 2);
    assert.equal(pets.summary.stages.find((s) => s.name === 'predictions')!.status, 'skipped');

    const csv = await run(dir, 'csv');
    assert.match(csv.stderr, /dataset: CSV manifest .*csv\/labels\.csv/);
    assert.equal(csv.summary.metrics.dataset!.images, 20);
  });
});

describe('tlpipe init', () => {
  test('recognises the layout, counts classes and images, and writes a pipeline that validates as written', async () => {
    const dir = await tempDir({
      'package.json': '{}',
      'data/hymenoptera/train/ants/1.jpg': '',
      'data/hymenoptera/train/ants/2.jpg': '',
      'data/hymenoptera/train/bees/1.jpg': '',
      'data/hymenoptera/val/ants/3.jpg': '',
      'data/hymenoptera/val/bees/4.jpg': '',
    });
    const r = await tlpipe(['init', 'data/hymenoptera'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      'Found ImageFolder layout: data/hymenoptera/train/<class>/ (2 classes), validation data/hymenoptera/val\n' +
        '  2 classes, 5 labelled images (ants 3, bees 2); no test images\n' +
        'Wrote pipelines/hymenoptera.yaml. Run it:\n  tlpipe run pipelines/hymenoptera.yaml',
    );
    const text = await readFile(path.join(dir, 'pipelines/hymenoptera.yaml'), 'utf8');
    assert.match(text, /^# {3}ImageFolder layout: data\/hymenoptera\/train\/<class>\/ \(2 classes\), validation data\/hymenoptera\/val$/m);
    assert.match(text, /^# {3}2 classes, 5 labelled images \(ants 3, bees 2\)$/m);
    assert.match(text, /^ {2}data: data\/hymenoptera /m);
    const v = await tlpipe(['validate', 'pipelines/hymenoptera.yaml'], { cwd: dir });
    assert.equal(v.code, 0, v.stderr);

    const again = await tlpipe(['init', 'data/hymenoptera'], { cwd: dir });
    assert.equal(again.code, 64);
    assert.equal(again.stderr, 'pipelines/hymenoptera.yaml already exists: pass --out FILE to write elsewhere, or --force to replace it.');
  });

  test('init --force DATA replaces the pipeline: the word after --force is the folder, not a stage', async () => {
    const dir = await tempDir({ 'package.json': '{}', 'pets/cat/1.jpg': '', 'pets/cat/2.jpg': '', 'pets/dog/3.jpg': '', 'pets/dog/4.jpg': '' });
    assert.equal((await tlpipe(['init', 'pets'], { cwd: dir })).code, 0);
    await writeFile(path.join(dir, 'pipelines/pets.yaml'), '# edited by hand\n');
    for (const args of [['init', '--force', 'pets'], ['init', 'pets', '--force']]) {
      const r = await tlpipe(args, { cwd: dir });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(await readFile(path.join(dir, 'pipelines/pets.yaml'), 'utf8'), /uses: images\.dataset/);
      await writeFile(path.join(dir, 'pipelines/pets.yaml'), '# edited by hand\n');
    }
  });

  test('a folder with no recognisable layout is a usage error that says what it expects', async () => {
    const dir = await tempDir({ 'package.json': '{}', 'empty/notes.txt': 'x' });
    const r = await tlpipe(['init', 'empty'], { cwd: dir });
    assert.equal(r.code, 64);
    assert.match(r.stderr, /^tlpipe init: cannot tell how the images in .*empty are laid out/);
    assert.equal(existsSync(path.join(dir, 'pipelines')), false);
  });

  test('the pipeline it writes for a PetImages download runs as written', { skip: needsFixtures }, async () => {
    const dir = await tempDir({ 'package.json': '{}' });
    for (const [cls, folder] of [['cat', 'Cat'], ['dog', 'Dog']] as const) {
      await mkdir(path.join(dir, 'pets/PetImages', folder), { recursive: true });
      for (let i = 0; i < 12; i++) {
        await symlink(fixture('datasets', 'catsdogs-2k', 'train', `${cls}.${i}.jpg`), path.join(dir, 'pets/PetImages', folder, `${i}.jpg`));
      }
    }
    const init = await tlpipe(['init', 'pets'], { cwd: dir });
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stderr, /2 classes, 24 labelled images \(Cat 12, Dog 12\); no test images/);
    const r = await tlpipe(['run', 'pipelines/pets.yaml', '--json'], { cwd: dir, env: { TLPIPE_MODELS: fixture('models') } });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { status: string; metrics: Record<string, Record<string, number>> };
    assert.equal(summary.status, 'succeeded');
    assert.equal(summary.metrics.dataset!.images, 24);
    assert.ok(existsSync(path.join(dir, 'out/pets/model.onnx')));
  });
});
