// Real data from the shared fixtures (skipped when they are absent): the
// Kaggle cats-vs-dogs names, a truly truncated JPEG, and photos whose
// tensors must equal torchvision's (PIL Resize(256), CenterCrop(224),
// ToTensor, Normalize) — reference values computed once with Pillow 9.4.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, symlink, mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  scanDataset,
  checkImageBytes,
  loadImageTensor,
  loadImageTensorInto,
  resolveTransform,
  tensorLength,
  ImageLoadError,
} from '../src/images/index.js';
import { fixture, needsFixtures } from './support/fixtures.js';
import { tempDir, removeDir } from './support/tmp.js';

const made: string[] = [];
after(async () => {
  await Promise.all(made.map(removeDir));
});

const catsDogs = (...parts: string[]) => fixture('datasets', 'catsdogs-2k', ...parts);

/** A small dataset made of links to the first real files (the fixtures are never copied). */
async function linkedSample(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  made.push(dir);
  for (const [link, target] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, link)), { recursive: true });
    await symlink(target, path.join(dir, link));
  }
  return dir;
}

describe('real fixtures', { skip: needsFixtures }, () => {
  it('labels real Kaggle file names with the classic rule and reads test ids', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 5; i++) {
      files[`train/cat.${i}.jpg`] = catsDogs('train', `cat.${i}.jpg`);
      files[`train/dog.${i}.jpg`] = catsDogs('train', `dog.${i}.jpg`);
    }
    for (const id of [1, 2, 10, 224, 267]) files[`test1/${id}.jpg`] = catsDogs('test1', `${id}.jpg`);
    const root = await linkedSample(files);
    const scan = await scanDataset({ layout: 'filename', train: 'train', test: 'test1', valFraction: 0.2, seed: 0 }, { baseDir: root });
    assert.deepEqual(scan.classes, ['cat', 'dog']);
    for (const image of scan.images.filter((i) => i.split !== 'test')) {
      assert.equal(image.label, path.basename(image.path).startsWith('cat.') ? 0 : 1, image.path);
    }
    assert.deepEqual(scan.counts.train.perClass, [4, 4]);
    assert.deepEqual(scan.counts.val.perClass, [1, 1]);
    assert.deepEqual(scan.images.filter((i) => i.split === 'test').map((i) => i.id), [1, 2, 10, 224, 267]);
    assert.deepEqual(scan.skipped, []);
    // 224.jpg and 267.jpg are byte-identical in the competition data.
    assert.match(scan.warnings.join('\n'), /224\.jpg = 267\.jpg/);
    const cat0 = scan.images.find((i) => i.path.endsWith('cat.0.jpg'))!;
    assert.equal(cat0.hash, createHash('sha256').update(await readFile(catsDogs('train', 'cat.0.jpg'))).digest('hex'));
  });

  it('rejects the truncated JPEG', async () => {
    const bytes = await readFile(fixture('images', 'truncated.jpg'));
    const check = await checkImageBytes(bytes, { maxPixels: 1e8, maxFileBytes: 1e6 });
    assert.equal(check.ok, false);
    assert.equal(!check.ok && check.kind, 'corrupt');
    await assert.rejects(loadImageTensor(fixture('images', 'truncated.jpg'), resolveTransform()), ImageLoadError);
  });

  it('produces the same tensors as torchvision with PIL', async () => {
    const spec = resolveTransform({}, { layout: 'NCHW', height: 224, width: 224 });
    const sha256 = (tensor: Float32Array) => createHash('sha256').update(new Uint8Array(tensor.buffer)).digest('hex');
    // PNGs decode identically everywhere: the tensors must be bit-identical.
    const chelsea = await loadImageTensor(fixture('images', 'chelsea.png'), spec);
    assert.equal(sha256(chelsea), '9209694292fcfea140cc5dde051e7d34e40860cdc42e10da65e77501da61a82d');
    const coffee = await loadImageTensor(fixture('images', 'coffee.png'), spec);
    assert.equal(sha256(coffee), 'e9230b749387102813ba055bbf4027efb3d35a924094e904d59c753d1956d96f');
    // A JPEG decoder may round differently elsewhere: compare sums, which any geometric slip would move.
    const dog = await loadImageTensor(fixture('images', 'dog.jpg'), spec);
    let sum = 0;
    let squares = 0;
    for (const v of dog) {
      sum += v;
      squares += v * v;
    }
    assert.ok(Math.abs(sum - 27159.329181769397) < 30, `sum ${sum}`);
    assert.ok(Math.abs(squares - 135553.115317813) < 100, `sum of squares ${squares}`);
  });

  it('loads real photos into a batch: finite values of the right shape', async () => {
    const spec = resolveTransform();
    const files = ['cat.0.jpg', 'cat.1.jpg', 'dog.0.jpg', 'dog.1.jpg'].map((name) => catsDogs('train', name));
    const length = tensorLength(spec);
    const batch = new Float32Array(files.length * length);
    await Promise.all(files.map((file, i) => loadImageTensorInto(file, spec, batch, i * length)));
    assert.ok(batch.every(Number.isFinite));
    for (let i = 0; i < files.length; i++) {
      const image = batch.subarray(i * length, (i + 1) * length);
      const min = image.reduce((a, b) => Math.min(a, b));
      const max = image.reduce((a, b) => Math.max(a, b));
      assert.ok(min >= -2.2 && max <= 2.7 && max - min > 1, `image ${i}: range ${min}..${max}`);
    }
  });
});
