// Dataset layouts (file-name labels, class folders, CSV manifest), the
// stratified split, extensions, ids, ordering, progress and cancellation.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { Ajv } from 'ajv';
import {
  scanDataset,
  datasetSpecSchema,
  idFromFileName,
  DatasetError,
  type DatasetScan,
  type DatasetSpec,
} from '../src/images/index.js';
import { parseCsv, CsvSyntaxError } from '../src/images/csv.js';
import { stratifiedSplit, validationCount } from '../src/images/split.js';
import { compareCodePoints } from '../src/images/order.js';
import { tempDir, removeDir } from './support/tmp.js';

const made: string[] = [];
after(async () => {
  await Promise.all(made.map(removeDir));
});

let colour = 0;
/** A small image, different from every other one made (distinct hashes). */
async function image(format: 'jpeg' | 'png' | 'webp' | 'tiff' | 'gif' = 'jpeg'): Promise<Buffer> {
  colour++;
  const background = { r: colour % 256, g: (colour * 7) % 256, b: Math.floor(colour / 256) };
  return sharp({ create: { width: 12, height: 10, channels: 3, background } }).toFormat(format).toBuffer();
}

async function folderOf(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = await tempDir(files);
  made.push(dir);
  return dir;
}

async function images(names: string[], format?: 'jpeg' | 'png'): Promise<Record<string, Buffer>> {
  const entries = await Promise.all(names.map(async (name) => [name, await image(format)] as const));
  return Object.fromEntries(entries);
}

const names = (scan: DatasetScan, split?: string) =>
  scan.images.filter((i) => !split || i.split === split).map((i) => path.basename(i.path));
const labelsByName = (scan: DatasetScan) =>
  Object.fromEntries(scan.images.filter((i) => i.label !== null).map((i) => [path.basename(i.path), scan.classes[i.label!]]));

describe('filename layout', () => {
  it('labels with the cats-vs-dogs rule and reads numeric test ids', async () => {
    const root = await folderOf({
      ...(await images(['train/cat.0.jpg', 'train/cat.1.jpg', 'train/cat.2.jpg'])),
      'train/bobcat.png': await image('png'),
      ...(await images(['train/dog.0.jpg', 'train/dog.1.jpg', 'train/puppy.jpg'])),
      'train/README.txt': 'not an image',
      ...(await images(['test1/10.jpg', 'test1/2.jpg', 'test1/1.jpg', 'test1/extra.jpg', 'test1/007.jpg'])),
    });
    const scan = await scanDataset({ layout: 'filename', train: 'train', test: 'test1', valFraction: 0 }, { baseDir: root });
    assert.deepEqual(scan.classes, ['cat', 'dog']);
    assert.deepEqual(labelsByName(scan), {
      'bobcat.png': 'cat',
      'cat.0.jpg': 'cat',
      'cat.1.jpg': 'cat',
      'cat.2.jpg': 'cat',
      'dog.0.jpg': 'dog',
      'dog.1.jpg': 'dog',
      'puppy.jpg': 'dog',
    });
    assert.equal(scan.validation, 'none');
    assert.deepEqual(scan.counts.train, { total: 7, perClass: [4, 3] });
    assert.deepEqual(scan.counts.val, { total: 0, perClass: [0, 0] });
    assert.deepEqual(scan.counts.test, { total: 5, perClass: [0, 0] });
    // Test images sorted by numeric id, then string ids.
    assert.deepEqual(
      scan.images.filter((i) => i.split === 'test').map((i) => i.id),
      [1, 2, 10, '007', 'extra'],
    );
    assert.equal(scan.ignored, 1);
    assert.deepEqual(scan.skipped, []);
    const first = scan.images[0]!;
    assert.equal(first.path, path.join(root, 'train', 'bobcat.png'));
    assert.equal(first.hash, createHash('sha256').update(await readFile(first.path)).digest('hex'));
    assert.deepEqual([first.format, first.width, first.height, first.id, first.split], ['png', 12, 10, null, 'train']);
  });

  it('labels with a regular expression capture group', async () => {
    const root = await folderOf({
      ...(await images(['wasp_1.jpg', 'ant_1.jpg', 'ant_2.jpg', 'bee_1.jpg', 'bee_2.jpg', 'notes.jpg'])),
    });
    const scan = await scanDataset(
      { layout: 'filename', train: root, valFraction: 0, labelRule: { type: 'regex', pattern: '^([a-z]+)_\\d+\\.jpg$' } },
    );
    assert.deepEqual(scan.classes, ['ant', 'bee', 'wasp']);
    assert.deepEqual(scan.counts.train.perClass, [2, 2, 1]);
    assert.deepEqual(
      scan.skipped.map((s) => [path.basename(s.path), s.kind]),
      [['notes.jpg', 'no-label']],
    );
    // A named group and a declared class list (order = index).
    const declared = await scanDataset({
      layout: 'filename',
      train: root,
      valFraction: 0,
      labelRule: { type: 'regex', pattern: '^(?<label>[a-z]+)_', classes: ['bee', 'ant'] },
    });
    assert.deepEqual(declared.classes, ['bee', 'ant']);
    assert.deepEqual(declared.counts.train.perClass, [2, 2]);
    assert.deepEqual(
      declared.skipped.map((s) => [path.basename(s.path), s.kind]),
      [['notes.jpg', 'no-label'], ['wasp_1.jpg', 'no-label']],
    );
  });

  it('skips names matching no class when there is no fallback, optionally ignoring case', async () => {
    const root = await folderOf(await images(['Cat.1.jpg', 'cat.2.jpg', 'DOG.1.jpg', 'bird.jpg']));
    const rule = { type: 'contains' as const, classes: ['cat', 'dog'] };
    const strict = await scanDataset({ layout: 'filename', train: root, valFraction: 0, labelRule: rule }).catch((e) => e);
    assert.ok(strict instanceof DatasetError, 'one class only when case matters');
    assert.match(strict.message, /only one class \('cat'\).*labelRule/);
    const folded = await scanDataset({ layout: 'filename', train: root, valFraction: 0, labelRule: { ...rule, ignoreCase: true } });
    assert.deepEqual(labelsByName(folded), { 'Cat.1.jpg': 'cat', 'cat.2.jpg': 'cat', 'DOG.1.jpg': 'dog' });
    assert.deepEqual(folded.skipped.map((s) => [path.basename(s.path), s.kind]), [['bird.jpg', 'no-label']]);
  });

  it('matches image extensions regardless of case, ignoring the rest', async () => {
    const root = await folderOf({
      'cat.1.JPG': await image('jpeg'),
      'cat.2.Jpeg': await image('jpeg'),
      'cat.3.PNG': await image('png'),
      'dog.1.WebP': await image('webp'),
      'dog.2.TIFF': await image('tiff'),
      'dog.3.gif': await image('gif'),
      'dog.4.bmp': 'BM not decodable here',
      'dog.5.txt': 'text',
      '.DS_Store': 'hidden',
    });
    const scan = await scanDataset({ layout: 'filename', train: root, valFraction: 0 });
    assert.deepEqual(names(scan), ['cat.1.JPG', 'cat.2.Jpeg', 'cat.3.PNG', 'dog.1.WebP', 'dog.2.TIFF', 'dog.3.gif']);
    assert.deepEqual(
      scan.images.map((i) => i.format),
      ['jpeg', 'jpeg', 'png', 'webp', 'tiff', 'gif'],
    );
    assert.equal(scan.ignored, 3);
    assert.match(scan.warnings.join('\n'), /3 file\(s\) ignored/);
  });

  it('uses a validation folder labelled by the same rule', async () => {
    const root = await folderOf(await images(['t/cat.1.jpg', 't/dog.1.jpg', 'v/cat.9.jpg', 'v/dog.9.jpg', 'v/x.jpg']));
    const scan = await scanDataset({ layout: 'filename', train: 't', val: 'v' }, { baseDir: root });
    assert.equal(scan.validation, 'declared');
    assert.deepEqual(names(scan, 'val'), ['cat.9.jpg', 'dog.9.jpg', 'x.jpg']);
    assert.deepEqual(scan.counts.val.perClass, [1, 2]);
  });
});

describe('folders layout', () => {
  it('takes classes from sub-folders, with validation and test folders', async () => {
    const root = await folderOf({
      ...(await images(['train/bees/b1.jpg', 'train/bees/b2.jpg', 'train/ants/a1.jpg', 'train/ants/deeper/a2.jpg'])),
      'train/stray.jpg': await image(),
      ...(await images(['val/ants/va.jpg', 'val/bees/vb.jpg', 'test/unknown/t1.jpg', 'test/5.jpg'])),
    });
    const scan = await scanDataset({ layout: 'folders', train: 'train', val: 'val', test: 'test' }, { baseDir: root });
    assert.deepEqual(scan.classes, ['ants', 'bees']);
    assert.equal(scan.validation, 'declared');
    assert.deepEqual(names(scan, 'train'), ['a1.jpg', 'a2.jpg', 'b1.jpg', 'b2.jpg']);
    assert.deepEqual(names(scan, 'val'), ['va.jpg', 'vb.jpg']);
    assert.deepEqual(scan.images.filter((i) => i.split === 'test').map((i) => i.id), [5, 't1']);
    assert.deepEqual(scan.counts.train.perClass, [2, 2]);
    assert.equal(scan.ignored, 1);
    assert.match(scan.warnings.join('\n'), /1 file\(s\) directly in .*train are in no class folder/);
  });

  it('follows a declared class order and leaves out other folders', async () => {
    const root = await folderOf(await images(['ants/a.jpg', 'bees/b.jpg', 'wasps/w.jpg']));
    const scan = await scanDataset({ layout: 'folders', train: root, classes: ['bees', 'ants'], valFraction: 0 });
    assert.deepEqual(scan.classes, ['bees', 'ants']);
    assert.deepEqual(labelsByName(scan), { 'a.jpg': 'ants', 'b.jpg': 'bees' });
    assert.match(scan.warnings.join('\n'), /left out: wasps/);
    await assert.rejects(
      scanDataset({ layout: 'folders', train: root, classes: ['bees', 'moths'] }),
      /dataset.classes names 'moths' but .* has no such sub-folder/,
    );
  });

  it('refuses a validation folder with a class train does not have', async () => {
    const root = await folderOf(await images(['train/a/1.jpg', 'train/b/1.jpg', 'val/a/2.jpg', 'val/c/2.jpg']));
    await assert.rejects(
      scanDataset({ layout: 'folders', train: 'train', val: 'val' }, { baseDir: root }),
      (error: unknown) => error instanceof DatasetError && /class folder\(s\) 'c' that .*train does not have/.test(error.message),
    );
  });

  it('says which folder is missing', async () => {
    const root = await folderOf({});
    await assert.rejects(
      scanDataset({ layout: 'folders', train: 'nope' }, { baseDir: root }),
      (error: unknown) =>
        error instanceof DatasetError && error.location === path.join(root, 'nope') && /does not exist/.test(error.message),
    );
  });
});

describe('csv layout', () => {
  it('reads path,label with quoted fields, paths relative to the manifest', async () => {
    const root = await folderOf({
      ...(await images(['data/img, one.jpg', 'data/say "cheese".jpg', 'data/two.png', 'data/three.jpg', 'data/v.jpg'])),
      'lists/labels.csv':
        '\ufeffpath,label,notes\r\n' +
        '"../data/img, one.jpg",10,"a comma, inside"\r\n' +
        '"../data/say ""cheese"".jpg",2,\r\n' +
        '../data/two.png,2,\r\n' +
        '../data/three.jpg,,no label\r\n' +
        '../data/missing.jpg,10,\r\n' +
        '../data/two.png,10,listed twice\r\n',
      'lists/val.csv': 'label,path\n10,../data/v.jpg\n',
    });
    const scan = await scanDataset({ layout: 'csv', manifest: 'lists/labels.csv', valManifest: 'lists/val.csv' }, { baseDir: root });
    // Integer labels sort numerically.
    assert.deepEqual(scan.classes, ['2', '10']);
    assert.deepEqual(labelsByName(scan), { 'img, one.jpg': '10', 'say "cheese".jpg': '2', 'two.png': '2', 'v.jpg': '10' });
    assert.deepEqual(names(scan, 'val'), ['v.jpg']);
    assert.deepEqual(
      scan.skipped.map((s) => [path.basename(s.path), s.kind, s.reason]),
      [
        ['missing.jpg', 'unreadable', 'file does not exist'],
        ['three.jpg', 'no-label', 'empty label at labels.csv line 5'],
      ],
    );
    assert.match(scan.warnings.join('\n'), /two.png is listed more than once \(again at labels.csv line 7\)/);
  });

  it('explains a manifest without the needed columns', async () => {
    const root = await folderOf({ 'm.csv': 'file,class\na.jpg,x\n' });
    await assert.rejects(scanDataset({ layout: 'csv', manifest: path.join(root, 'm.csv') }), /no 'path' column.*header/);
  });

  it('parses RFC 4180 CSV', () => {
    assert.deepEqual(
      parseCsv('a,b\r\n"x, y","say ""hi"""\n\n"multi\nline",\n').map((r) => [r.line, r.fields]),
      [
        [1, ['a', 'b']],
        [2, ['x, y', 'say "hi"']],
        [4, ['multi\nline', '']],
      ],
    );
    assert.deepEqual(parseCsv('p,l').map((r) => r.fields), [['p', 'l']]);
    assert.throws(() => parseCsv('a,"open\n'), CsvSyntaxError);
    assert.throws(() => parseCsv('a,b"c\n'), /line 1: a quote inside an unquoted field/);
  });
});

describe('stratified split', () => {
  it('holds out round(n × fraction) of each class, at least one left for training', () => {
    assert.equal(validationCount(10, 0.3), 3);
    assert.equal(validationCount(7, 0.3), 2);
    assert.equal(validationCount(1, 0.5), 0);
    assert.equal(validationCount(2, 0.9), 1);
    assert.equal(validationCount(5, 0), 0);
  });

  it('gives exact per-class counts and does not depend on listing order or location', async () => {
    const files = [
      ...Array.from({ length: 10 }, (_, i) => `cat.${i}.jpg`),
      ...Array.from({ length: 7 }, (_, i) => `dog.${i}.jpg`),
    ];
    const contents = await images(files);
    const forward = await folderOf(contents);
    const backward = await folderOf(Object.fromEntries(Object.entries(contents).reverse()));
    const spec = (train: string): DatasetSpec => ({ layout: 'filename', train, valFraction: 0.3, seed: 42 });
    const a = await scanDataset(spec(forward));
    const b = await scanDataset(spec(backward), { concurrency: 1 });
    assert.equal(a.validation, 'split');
    assert.deepEqual(a.counts.val, { total: 5, perClass: [3, 2] });
    assert.deepEqual(a.counts.train, { total: 12, perClass: [7, 5] });
    assert.deepEqual(names(a, 'val'), names(b, 'val'));
    assert.deepEqual(names(a), names(b));
    const other = await scanDataset({ ...spec(forward), seed: 43 } as DatasetSpec);
    assert.notDeepEqual(names(other, 'val'), names(a, 'val'));
    assert.deepEqual(other.counts.val.perClass, [3, 2]);
  });

  it('splits the same way given the same keys, whatever the input order', () => {
    const items = Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, label: i % 3 }));
    const one = stratifiedSplit(items, (x) => x.label, (x) => x.key, 0.25, 9);
    const two = stratifiedSplit([...items].reverse(), (x) => x.label, (x) => x.key, 0.25, 9);
    const keys = (list: { key: string }[]) => list.map((x) => x.key).sort(compareCodePoints);
    assert.deepEqual(keys(one.val), keys(two.val));
    // 14, 13 and 13 items: round(3.5) + round(3.25) + round(3.25).
    assert.equal(one.val.length, 4 + 3 + 3);
  });
});

describe('scan options and schema', () => {
  it('reports progress and stops when aborted', async () => {
    const root = await folderOf(await images(['cat.1.jpg', 'cat.2.jpg', 'dog.1.jpg', 'dog.2.jpg']));
    const calls: [number, number][] = [];
    await scanDataset({ layout: 'filename', train: root }, { onProgress: (done, total) => calls.push([done, total]) });
    assert.deepEqual(calls, [[1, 4], [2, 4], [3, 4], [4, 4]]);

    const controller = new AbortController();
    const aborted = scanDataset(
      { layout: 'filename', train: root },
      { signal: controller.signal, concurrency: 1, onProgress: () => controller.abort() },
    );
    await assert.rejects(aborted, { name: 'AbortError' });
  });

  it('derives test ids from file names', () => {
    assert.equal(idFromFileName('123.jpg'), 123);
    assert.equal(idFromFileName('0.png'), 0);
    assert.equal(idFromFileName('007.jpg'), '007');
    assert.equal(idFromFileName('img_7.jpeg'), 'img_7');
    assert.equal(idFromFileName('99999999999999999999.jpg'), '99999999999999999999');
  });

  it('has a JSON Schema that strict ajv compiles', () => {
    const ajv = new Ajv({ strict: true, useDefaults: true, allErrors: true });
    const validate = ajv.compile(datasetSpecSchema);
    const ok = (spec: unknown) => {
      const valid = validate(spec);
      return valid || JSON.stringify(validate.errors);
    };
    const kaggle: Record<string, unknown> = { layout: 'filename', train: 'data/train', test: 'data/test1' };
    assert.equal(ok(kaggle), true);
    assert.equal(kaggle.valFraction, 0.2);
    assert.equal(kaggle.seed, 0);
    assert.equal(ok({ layout: 'filename', train: 't', labelRule: { type: 'regex', pattern: '^(\\w+)_', group: 1 } }), true);
    assert.equal(ok({ layout: 'folders', train: 't', val: 'v', classes: ['a', 'b'] }), true);
    assert.equal(ok({ layout: 'csv', manifest: 'labels.csv', valManifest: 'val.csv' }), true);
    assert.equal(validate({ layout: 'csv', train: 't' }), false);
    assert.equal(validate({ layout: 'folders', manifest: 'x.csv', train: 't' }), false);
    assert.equal(validate({ layout: 'filename' }), false);
    assert.equal(validate({ layout: 'filename', train: 't', valFraction: 1 }), false);
    assert.equal(validate({ layout: 'filename', train: 't', labelRule: { type: 'contains' } }), false);
    assert.equal(validate({ layout: 'filename', train: 't', extra: 1 }), false);
  });
});
