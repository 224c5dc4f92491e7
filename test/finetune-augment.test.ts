// Augmented copies at the cut (activations.extract's `augmentedCopies`): on
// real photos with the fixtures' int8 MobileNetV2, the copies are extracted
// and counted, stored after the plain rows without changing them, used for
// training rows only, and keyed by content (image, copy, augmentation, seed):
// more copies compute only the new ones, another seed only the copies.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { readDatasetManifest } from '../src/artifacts/dataset-manifest.js';
import { ArtifactStore } from '../src/runner/store.js';
import { tlpipe } from './support/cli.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

const env = () => ({ TLPIPE_MODELS: fixture('models') });
const TRAIN = 5;
const VAL = 8;
const WIDTH = 160 * 7 * 7;

interface Summary {
  stages: { name: string; status: string; fingerprint: string }[];
  metrics: Record<string, Record<string, number | boolean | null>>;
}

async function project(): Promise<string> {
  const dir = await tempDir({ 'package.json': '{}' });
  await mkdir(path.join(dir, 'pipelines'));
  await copyFile(path.join(repoRoot, 'pipelines', 'catsdogs-finetune.yaml'), path.join(dir, 'pipelines', 'catsdogs-finetune.yaml'));
  for (const c of ['cat', 'dog']) {
    for (const [split, from, count] of [['train', 0, TRAIN], ['val', 500, VAL]] as const) {
      await mkdir(path.join(dir, 'data', split, c), { recursive: true });
      for (let i = from; i < from + count; i++) await symlink(fixture('datasets', 'catsdogs-2k', 'train', `${c}.${i}.jpg`), path.join(dir, 'data', split, c, `${i}.jpg`));
    }
  }
  return dir;
}

async function run(dir: string, ...args: string[]): Promise<Summary> {
  const r = await tlpipe(['run', 'pipelines/catsdogs-finetune.yaml', '--set', 'data=data', '--set', 'epochs=1', '--json', ...args], { cwd: dir, env: env() });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Summary;
}

interface Stored {
  /** The 8-bit codes, one Buffer per matrix row. */
  rows: Buffer[];
  /** Image index of each plain row, then of each augmented row. */
  table: { rows: number[]; augmentedRows: number[] };
  /** The k-th copy of an image ("index:k") → its matrix row. */
  copies: Map<string, number>;
}

/** The activation artifact as stored. */
async function stored(dir: string, s: Summary): Promise<Stored> {
  const store = await ArtifactStore.open(path.join(dir, '.tlpipe'));
  const found = await store.lookup(s.stages.find((x) => x.name === 'activations')!.fingerprint, 'quick');
  assert.ok(found.found);
  const bytes = await readFile(found.artifact.file('activations.q8'));
  const table = JSON.parse(await readFile(found.artifact.file('rows.json'), 'utf8')) as Stored['table'];
  const count = table.rows.length + (table.augmentedRows?.length ?? 0);
  table.augmentedRows ??= [];
  assert.equal(bytes.length, count * WIDTH);
  const copies = new Map<string, number>();
  const seen = new Map<number, number>();
  table.augmentedRows.forEach((imageIndex, i) => {
    const k = (seen.get(imageIndex) ?? 0) + 1;
    seen.set(imageIndex, k);
    copies.set(`${imageIndex}:${k}`, table.rows.length + i);
  });
  return { rows: Array.from({ length: count }, (_, r) => bytes.subarray(r * WIDTH, (r + 1) * WIDTH)), table, copies };
}

/** Bytes of each chunk log (one per scope) in the project's store. */
async function chunkBytes(dir: string): Promise<number[]> {
  const root = path.join(dir, '.tlpipe', 'chunks');
  const out: number[] = [];
  for (const scope of await readdir(root)) {
    let total = 0;
    for (const f of await readdir(path.join(root, scope))) total += (await stat(path.join(root, scope, f))).size;
    out.push(total);
  }
  return out;
}

test('augmented copies at the cut: extracted, counted, training rows only, keyed by content', { skip: needsFixtures }, async () => {
  const dir = await project();
  const images = 2 * (TRAIN + VAL);
  const plain = await run(dir);
  const plainRows = (await stored(dir, plain)).rows;
  assert.equal(plainRows.length, images);
  // The chunk log holds the activations as 8-bit codes too: no scope holds float32's bytes for them.
  const scopes = await chunkBytes(dir);
  assert.ok(scopes.some((n) => n >= images * (32 + WIDTH) && n < images * (32 + WIDTH) + 4096), `chunk logs of ${scopes.join(', ')} bytes`);
  assert.ok(scopes.every((n) => n < images * WIDTH * 4), `chunk logs of ${scopes.join(', ')} bytes`);
  assert.equal(plain.metrics.finetune!.trainRows, 2 * TRAIN);

  // Two flipped copies of every training image: 2 × 10 new rows, nothing else recomputed.
  const augment = ['--set', 'transform.augment={horizontalFlip: 1}', '--set', 'activations.augmentedCopies=2'];
  const two = await run(dir, ...augment);
  assert.equal(two.metrics.activations!.computed, 2 * 2 * TRAIN, 'only the copies are computed');
  assert.equal(two.metrics.activations!.bytes, (images + 2 * 2 * TRAIN) * WIDTH, 'the copies are stored and counted');
  assert.equal(two.metrics.features!.computed, 0, "the probe's features come from their chunks");
  assert.equal(two.metrics.finetune!.trainRows, 3 * 2 * TRAIN, 'training sees every copy');
  assert.equal(two.metrics.finetune!.valRows, 2 * VAL, 'validation sees the plain views only');
  const withTwo = await stored(dir, two);
  assert.equal(withTwo.rows.length, images + 2 * 2 * TRAIN);
  // The plain rows come first, unchanged.
  for (let r = 0; r < images; r++) assert.ok(withTwo.rows[r]!.equals(plainRows[r]!), `plain row ${r} changed`);
  // Two copies of each of the 10 training images, none of a validation image; a copy is its image flipped.
  const trainImages = new Set(withTwo.table.augmentedRows);
  assert.equal(trainImages.size, 2 * TRAIN);
  const store = await ArtifactStore.open(path.join(dir, '.tlpipe'));
  const dataset = await store.lookup(two.stages.find((x) => x.name === 'dataset')!.fingerprint, 'quick');
  assert.ok(dataset.found);
  const manifest = await readDatasetManifest(dataset.artifact);
  for (const imageIndex of trainImages) assert.equal(manifest.images[imageIndex]!.split, 'train', `a copy of ${manifest.images[imageIndex]!.path}`);
  for (const imageIndex of trainImages) {
    const plainRow = withTwo.table.rows.indexOf(imageIndex);
    for (const k of [1, 2]) assert.ok(!withTwo.rows[withTwo.copies.get(`${imageIndex}:${k}`)!]!.equals(withTwo.rows[plainRow]!), `copy ${k} of image ${imageIndex} equals its plain view`);
  }

  // A third copy: only it is computed; the first two come from the chunks, byte for byte.
  const three = await run(dir, '--set', 'transform.augment={horizontalFlip: 1}', '--set', 'activations.augmentedCopies=3');
  assert.equal(three.metrics.activations!.computed, 2 * TRAIN);
  assert.equal(three.metrics.finetune!.trainRows, 4 * 2 * TRAIN);
  const withThree = await stored(dir, three);
  for (const [key, row] of withTwo.copies) assert.ok(withThree.rows[withThree.copies.get(key)!]!.equals(withTwo.rows[row]!), `copy ${key} changed`);
  // Another augmentation seed names other copies: they are computed again, the plain rows are not.
  const reseeded = await run(dir, ...augment, '--set', 'activations.augmentSeed=7');
  assert.equal(reseeded.metrics.activations!.computed, 2 * 2 * TRAIN);
  // The first configuration again: everything is cached, the same artifact.
  const again = await run(dir, ...augment);
  assert.equal(again.stages.find((x) => x.name === 'activations')!.status, 'cached');
});
