// The accuracy benchmark's data: the fixture photos' backbone features,
// computed once by tlpipe itself (a generated pipeline run with a persistent
// cache folder, so later runs reuse them) and read back from the artifact
// store; and the cases built from them: other "backbones" (the same features
// scaled or shifted), few-shot subsets, and a many-class set labelled with
// the backbone's own ImageNet classes.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ArtifactStore } from '../src/runner/store.js';
import { readFeatureTable, splitFeatures, type SplitFeatures } from '../src/artifacts/features.js';
import { Prng } from '../src/train/prng.js';
import { fixture, repoRoot } from '../test/support/fixtures.js';

const run = promisify(execFile);
const bin = path.join(repoRoot, 'dist', 'src', 'bin.cjs');

export const benchDir = path.resolve(process.env.TLPIPE_BENCH_ACCURACY ?? path.join(os.tmpdir(), 'tlpipe-bench-accuracy'));

/** A labelled feature set split in two, as head.train sees it. */
export interface Case {
  name: string;
  width: number;
  classes: number;
  train: { features: Float32Array; labels: Int32Array };
  val: { features: Float32Array; labels: Int32Array };
}

// Features of the centre crop (the catsdogs pipeline's transform), and the
// uncut model's 1000 ImageNet logits of another view of the same photo (the
// whole photo squashed to 224×224), whose top class labels the many-class case.
const pipeline = (data: string, model: string) => `tlpipe: 1
name: accuracy-bench
stages:
  dataset:
    uses: images.dataset
    with: {layout: filename, train: ${data}/train, test: ${data}/test1, labelRule: {type: contains, classes: [cat, dog], otherwise: dog}, valFraction: 0.2, seed: 0}
  backbone:
    uses: backbone.load
    with: {model: ${model}}
  transform:
    uses: images.transform
    inputs: {backbone: backbone}
    with: {resize: 256, centerCrop: 224}
  freeze:
    uses: backbone.freeze
    inputs: {backbone: backbone}
  features:
    uses: features.extract
    inputs: {dataset: dataset, transform: transform, model: freeze}
  squash:
    uses: images.transform
    inputs: {backbone: backbone}
    with: {resize: {width: 224, height: 224}, centerCrop: null}
  whole:
    uses: backbone.freeze
    inputs: {backbone: backbone}
    with: {tensor: output}
  logits:
    uses: features.extract
    inputs: {dataset: dataset, transform: squash, model: whole}
`;

interface Extracted {
  features: { train: SplitFeatures; val: SplitFeatures; test: SplitFeatures };
  logits: { train: SplitFeatures; val: SplitFeatures; test: SplitFeatures };
}

/** Runs (or reuses from the cache) the feature pipeline over the fixtures' catsdogs-2k photos. */
export async function extractFixtureFeatures(log: (s: string) => void): Promise<Extracted> {
  await mkdir(benchDir, { recursive: true });
  // A package.json marks the project folder, so the cache and relative paths stay in benchDir.
  await writeFile(path.join(benchDir, 'package.json'), '{"private": true}\n');
  const file = path.join(benchDir, 'features.yaml');
  await writeFile(file, pipeline(fixture('datasets', 'catsdogs-2k'), fixture('models', 'mobilenetv2-12-int8.onnx')));
  const cacheDir = path.join(benchDir, '.tlpipe');
  const started = performance.now();
  const { stdout } = await run(process.execPath, [bin, 'run', file, '--json', '--cache-dir', cacheDir], {
    cwd: benchDir,
    env: { ...process.env, CI: 'true' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const summary = JSON.parse(stdout) as { stages: { name: string; status: string; fingerprint: string }[] };
  const statuses = summary.stages.map((s) => `${s.name} ${s.status}`).join(', ');
  log(`features through tlpipe's own pipeline (cache ${cacheDir}): ${statuses} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const store = await ArtifactStore.open(cacheDir);
  const artifact = async (stage: string) => {
    const fp = summary.stages.find((s) => s.name === stage)!.fingerprint;
    const found = await store.lookup(fp, 'quick');
    if (!found.found) throw new Error(`the ${stage} artifact is not in ${cacheDir}: ${found.reason}`);
    return found.artifact;
  };
  const dataset = await artifact('dataset');
  const splits = async (stage: string) => {
    const table = await readFeatureTable(await artifact(stage), dataset);
    return { train: splitFeatures(table, 'train'), val: splitFeatures(table, 'val'), test: splitFeatures(table, 'test') };
  };
  return { features: await splits('features'), logits: await splits('logits') };
}

const copy = (s: SplitFeatures) => ({ features: s.features.slice(), labels: s.labels.slice() });

/** The features as another backbone would give them: each value times `scale`, plus `shift`. */
export function transformed(c: Case, name: string, scale: number, shift: number): Case {
  const map = (x: { features: Float32Array; labels: Int32Array }) => ({ features: x.features.map((v) => v * scale + shift), labels: x.labels });
  return { ...c, name, train: map(c.train), val: map(c.val) };
}

/** `perClass` training rows of each class, drawn with a seed; the validation split stays whole. */
export function fewShot(c: Case, perClass: number, seed: number): Case {
  const rng = new Prng(seed, 7);
  const rows: number[] = [];
  for (let y = 0; y < c.classes; y++) {
    const members = Int32Array.from(Array.from(c.train.labels.keys()).filter((i) => c.train.labels[i] === y));
    rows.push(...rng.shuffle(members).subarray(0, perClass));
  }
  rows.sort((a, b) => a - b);
  const features = new Float32Array(rows.length * c.width);
  rows.forEach((r, i) => features.set(c.train.features.subarray(r * c.width, (r + 1) * c.width), i * c.width));
  return { ...c, name: `${c.name}, ${perClass} per class`, train: { features, labels: Int32Array.from(rows, (r) => c.train.labels[r]!) } };
}

export function catsdogsCase(x: Extracted): Case {
  return { name: 'catsdogs-2k', width: x.features.train.features.length / x.features.train.images.length, classes: 2, train: copy(x.features.train), val: copy(x.features.val) };
}

/**
 * Many classes: every photo (train, validation and the unlabelled test1)
 * labelled by the backbone's top ImageNet class on the squashed whole-photo
 * view; classes with at least `minImages` photos kept; a stratified, seeded
 * 70/30 split. The features are the centre-crop ones, so the labels are not
 * a linear function of them.
 */
export function imagenetCase(x: Extracted, minImages: number): Case & { names: number[] } {
  const all = (['train', 'val', 'test'] as const).map((s) => ({ f: x.features[s], l: x.logits[s] }));
  const width = x.features.train.features.length / Math.max(1, x.features.train.images.length);
  const rows: { features: Float32Array; top: number }[] = [];
  for (const { f, l } of all) {
    const byPath = new Map(l.images.map((img, i) => [img.path, i]));
    const C = 1000;
    f.images.forEach((img, i) => {
      const j = byPath.get(img.path);
      if (j === undefined) return;
      let top = 0;
      for (let c = 1; c < C; c++) if (l.features[j * C + c]! > l.features[j * C + top]!) top = c;
      rows.push({ features: f.features.subarray(i * width, (i + 1) * width), top });
    });
  }
  const counts = new Map<number, number>();
  for (const r of rows) counts.set(r.top, (counts.get(r.top) ?? 0) + 1);
  const kept = [...counts.entries()].filter(([, n]) => n >= minImages).map(([c]) => c).sort((a, b) => a - b);
  const index = new Map(kept.map((c, i) => [c, i]));
  const rng = new Prng(5, 8);
  const train: number[] = [];
  const val: number[] = [];
  for (const c of kept) {
    const members = Int32Array.from(rows.map((r, i) => [r, i] as const).filter(([r]) => r.top === c).map(([, i]) => i));
    rng.shuffle(members);
    const cut = Math.round(members.length * 0.7);
    train.push(...members.subarray(0, cut));
    val.push(...members.subarray(cut));
  }
  const pack = (ids: number[]) => {
    const features = new Float32Array(ids.length * width);
    ids.forEach((id, i) => features.set(rows[id]!.features, i * width));
    return { features, labels: Int32Array.from(ids, (id) => index.get(rows[id]!.top)!) };
  };
  return { name: `imagenet-top1, ${kept.length} classes`, width, classes: kept.length, train: pack(train), val: pack(val), names: kept };
}

/**
 * `rows` vectors for timing: real feature vectors drawn at random, each
 * value scaled by a random factor in [0.6, 1.4], labelled into `classes`
 * classes (two: the photo's own label; more: a class-specific sparse offset
 * added), with 3 % of the labels flipped at random, so the problem is not
 * separable and the solver has to work as on real data.
 */
export function scaledUp(c: Case, rows: number, classes: number, seed: number): { features: Float32Array; labels: Int32Array } {
  const rng = new Prng(seed, 9);
  const F = c.width;
  const n = c.train.labels.length;
  // The class offsets depend on the class count only, so a training and a validation set share them.
  const offsetRng = new Prng(classes, 10);
  const offsets = Array.from({ length: classes }, () => Float32Array.from({ length: F }, () => (offsetRng.uniform() < 0.05 ? 1 + offsetRng.uniform() * 2 : 0)));
  const features = new Float32Array(rows * F);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const src = rng.below(n);
    const y = classes === 2 ? c.train.labels[src]! : rng.below(classes);
    labels[i] = rng.uniform() < 0.03 ? rng.below(classes) : y;
    const off = offsets[y]!;
    for (let k = 0; k < F; k++)
      features[i * F + k] = c.train.features[src * F + k]! * (0.6 + 0.8 * rng.uniform()) + (classes === 2 ? 0 : off[k]!);
  }
  return { features, labels };
}

/**
 * Another split of the same labelled rows: train and validation pooled, then
 * a stratified, seeded 70/30 split again (`seed` 0 returns the case itself).
 * The mean over several such splits takes out most of the luck of one
 * validation set, for the case and for the best point of a grid alike.
 */
export function resplit(c: Case, seed: number): Case {
  if (seed === 0) return c;
  const F = c.width;
  const n1 = c.train.labels.length;
  const features = new Float32Array((n1 + c.val.labels.length) * F);
  features.set(c.train.features);
  features.set(c.val.features, n1 * F);
  const labels = Int32Array.from([...c.train.labels, ...c.val.labels]);
  const rng = new Prng(seed, 11);
  const train: number[] = [];
  const val: number[] = [];
  for (let y = 0; y < c.classes; y++) {
    const members = Int32Array.from(Array.from(labels.keys()).filter((i) => labels[i] === y));
    rng.shuffle(members);
    const cut = Math.round(members.length * 0.7);
    train.push(...members.subarray(0, cut));
    val.push(...members.subarray(cut));
  }
  const pack = (ids: number[]) => {
    const out = new Float32Array(ids.length * F);
    ids.forEach((id, i) => out.set(features.subarray(id * F, (id + 1) * F), i * F));
    return { features: out, labels: Int32Array.from(ids, (id) => labels[id]!) };
  };
  return { ...c, name: `${c.name}, split ${seed}`, train: pack(train), val: pack(val) };
}

