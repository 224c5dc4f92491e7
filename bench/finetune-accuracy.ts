// `node dist/bench/finetune-accuracy.js [--cases few10,few30,px64,px64:100,imagenet] [--epochs 10] [--blocks 3]
//     [--block-lr 1e-4] [--lr 1e-4] [--patience 3] [--copies 0] [--train-per-class 600] [--min-images 50]`
//
// Fine-tuning against the linear probe it starts from (head.train's default:
// L-BFGS, weightDecay chosen on the validation split), on cases harder than
// catsdogs-2k at full resolution, each run through a generated pipeline with
// the stages of pipelines/catsdogs-finetune.yaml (ImageFolder layout, so the
// cases can hold any classes):
//   - few10, few30: few-shot subsets, 10 and 30 training photos per class;
//   - px64: catsdogs with every photo shrunk to a shorter side of 64 pixels
//     first (the pipeline then resizes it up to 224 again), so the pretrained
//     features lose what they were trained to see: the case where the
//     features are the limit (`px64:100`: 100 training photos per class
//     instead of --train-per-class; px32 shrinks to 32 pixels);
//   - imagenet: a many-class split, the photos labelled by the backbone's own
//     top ImageNet class on the whole squashed photo (bench/accuracy-data.ts;
//     the classes with at least --min-images photos), trained on centre crops.
// The catsdogs cases share one validation split (401 photos per class) and
// one cache folder, so a photo's features and activations are computed once
// across cases. Prints one row per case: the probe's validation accuracy, the
// warm start's (epoch 0: the linear head on the float32 top), the fine-tuned
// model's, the best epoch, whether the probe was kept. Bench tooling, never in CI.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { extractFixtureFeatures } from './accuracy-data.js';
import { fixture, repoRoot } from '../test/support/fixtures.js';
import { Prng } from '../src/train/prng.js';

const run = promisify(execFile);
const bin = path.join(repoRoot, 'dist', 'src', 'bin.cjs');
const benchDir = path.resolve(process.env.TLPIPE_BENCH_FINETUNE ?? path.join(os.tmpdir(), 'tlpipe-bench-finetune'));

interface Case {
  name: string;
  slug: string;
  /** Photos per class and split: class name → file paths. */
  files: { train: Map<string, string[]>; val: Map<string, string[]> };
  /** Shorter side the photos are shrunk to first (null: as they are). */
  shrinkTo: number | null;
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function listFlag(name: string, fallback: string[]): string[] {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]!.split(',') : fallback;
}

// Photos 0 … 599 of each class are the training pool, 600 … 1000 the validation split (802 photos).
const VAL_FROM = 600;

async function catsdogs(trainPerClass: number, shrinkTo: number | null): Promise<Case> {
  if (trainPerClass > VAL_FROM) throw new Error(`--train-per-class ${trainPerClass}: at most ${VAL_FROM} (the rest is the validation split)`);
  const dir = fixture('datasets', 'catsdogs-2k', 'train');
  const names = (await readdir(dir)).filter((f) => f.endsWith('.jpg'));
  const of = (c: string, from: number, count: number) =>
    names
      .filter((f) => f.startsWith(`${c}.`))
      .map((f) => [Number(f.split('.')[1]), f] as const)
      .filter(([i]) => i >= from && i < from + count)
      .sort((a, b) => a[0] - b[0])
      .map(([, f]) => path.join(dir, f));
  const classes = ['cat', 'dog'];
  return {
    name: `catsdogs${shrinkTo ? ` at ${shrinkTo} px` : ''}, ${trainPerClass} per class`,
    slug: `catsdogs-${shrinkTo ?? 'full'}-${trainPerClass}`,
    files: { train: new Map(classes.map((c) => [c, of(c, 0, trainPerClass)])), val: new Map(classes.map((c) => [c, of(c, VAL_FROM, 1001 - VAL_FROM)])) },
    shrinkTo,
  };
}

/** The photos labelled by the backbone's top ImageNet class on the squashed view; a seeded, stratified 70/30 split. */
async function imagenet(minImages: number): Promise<Case> {
  const x = await extractFixtureFeatures((l) => console.log(`  ${l}`));
  const byClass = new Map<number, string[]>();
  for (const split of ['train', 'val', 'test'] as const) {
    const l = x.logits[split];
    l.images.forEach((img, i) => {
      let top = 0;
      for (let c = 1; c < 1000; c++) if (l.features[i * 1000 + c]! > l.features[i * 1000 + top]!) top = c;
      byClass.set(top, [...(byClass.get(top) ?? []), img.path]);
    });
  }
  const kept = [...byClass].filter(([, files]) => files.length >= minImages).sort((a, b) => a[0] - b[0]);
  const rng = new Prng(5, 8);
  const train = new Map<string, string[]>();
  const val = new Map<string, string[]>();
  for (const [c, files] of kept) {
    const order = rng.shuffle(Int32Array.from(files.keys()));
    const cut = Math.round(files.length * 0.7);
    train.set(`n${c}`, Array.from(order.subarray(0, cut), (i) => files[i]!));
    val.set(`n${c}`, Array.from(order.subarray(cut), (i) => files[i]!));
  }
  return { name: `imagenet-top1, ${kept.length} classes (≥ ${minImages} photos)`, slug: `imagenet-${minImages}`, files: { train, val }, shrinkTo: null };
}

/** The case's photos as ImageFolder train/<class>/, val/<class>/: links, or shrunk copies (made once). */
async function materialise(c: Case): Promise<string> {
  const data = path.join(benchDir, 'data', c.slug);
  for (const [split, byClass] of Object.entries(c.files)) {
    for (const [label, files] of byClass) {
      const folder = path.join(data, split, label);
      await mkdir(folder, { recursive: true });
      for (const file of files) {
        const to = path.join(folder, path.basename(file));
        if (existsSync(to)) continue;
        if (c.shrinkTo) {
          const shrunk = await sharp(file).rotate().resize({ width: c.shrinkTo, height: c.shrinkTo, fit: 'outside' }).jpeg({ quality: 95 }).toBuffer();
          await writeFile(`${to}.tmp`, shrunk);
          await rename(`${to}.tmp`, to);
        } else await symlink(file, to);
      }
    }
  }
  return data;
}

// The stages of pipelines/catsdogs-finetune.yaml on an ImageFolder layout.
const pipeline = (data: string, model: string, r: Recipe) => `tlpipe: 1
name: finetune-accuracy
stages:
  dataset:
    uses: images.dataset
    with: {layout: auto, root: ${data}}
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
    with: {device: cpu}
  head:
    uses: head.define
    inputs: {dataset: dataset, model: freeze}
    with: {kind: linear, seed: 0}
  train:
    uses: head.train
    inputs: {head: head, features: features, dataset: dataset}
    with: {optimizer: lbfgs, weightDecay: auto, seed: 0, device: cpu}
  split:
    uses: backbone.split
    inputs: {backbone: backbone}
    with: {trainableBlocks: ${r.blocks}}
  # The activations' own transform: the same plain view, plus the augmentation their copies use.
  cutTransform:
    uses: images.transform
    inputs: {backbone: backbone}
    with: {resize: 256, centerCrop: 224${r.copies ? ', augment: {horizontalFlip: 0.5}' : ''}}
  activations:
    uses: activations.extract
    inputs: {dataset: dataset, transform: cutTransform, split: split}
    with: {device: cpu, augmentedCopies: ${r.copies}}
  finetune:
    uses: backbone.finetune
    inputs: {split: split, activations: activations, dataset: dataset, train: train}
    with: {epochs: ${r.epochs}, lr: ${r.lr}, blockLr: ${r.blockLr}, patience: ${r.patience}, seed: 0, device: cpu}
`;

interface Recipe {
  blocks: number;
  epochs: number;
  lr: number;
  blockLr: number;
  patience: number;
  /** Flipped copies per training image at the cut. */
  copies: number;
}

interface Row {
  name: string;
  train: number;
  val: number;
  probe: number;
  start: number | null;
  finetuned: number;
  bestEpoch: number;
  epochsRun: number;
  keptProbe: boolean;
  epochSeconds: number | null;
}

async function runCase(c: Case, r: Recipe): Promise<Row> {
  const data = await materialise(c);
  const project = path.join(benchDir, 'projects', c.slug);
  await mkdir(project, { recursive: true });
  await writeFile(path.join(project, 'package.json'), '{"private": true}\n');
  const file = path.join(project, 'finetune.yaml');
  await writeFile(file, pipeline(data, fixture('models', 'mobilenetv2-12-int8.onnx'), r));
  const { stdout, stderr } = await run(process.execPath, [bin, 'run', file, '--json', '--cache-dir', path.join(benchDir, '.tlpipe')], {
    cwd: project,
    env: { ...process.env, CI: 'true' },
    maxBuffer: 64 * 1024 * 1024,
  });
  await writeFile(path.join(project, 'last-run.log'), stderr);
  const m = (JSON.parse(stdout) as { metrics: Record<string, Record<string, number | boolean | null>> }).metrics;
  // The warm start's score and the epochs run, from the step's log (the metrics keep the best epoch only).
  const start = /start \(linear head on the float32 top\): val loss [\d.]+ acc ([\d.]+)%/.exec(stderr);
  const epochs = [...stderr.matchAll(/epoch (\d+)\/\d+: train loss/g)].map((x) => Number(x[1]));
  const count = (split: 'train' | 'val') => [...c.files[split].values()].reduce((a, f) => a + f.length, 0);
  return {
    name: c.name,
    train: count('train'),
    val: count('val'),
    probe: m.train!.valAccuracy as number,
    start: start ? Number(start[1]) / 100 : null,
    finetuned: m.finetune!.valAccuracy as number,
    bestEpoch: m.finetune!.bestEpoch as number,
    epochsRun: epochs.length ? Math.max(...epochs) : 0,
    keptProbe: m.finetune!.keptProbe as boolean,
    epochSeconds: m.finetune!.epochSeconds as number | null,
  };
}

async function main(): Promise<void> {
  const recipe: Recipe = { blocks: flag('blocks', 3), epochs: flag('epochs', 10), lr: flag('lr', 1e-4), blockLr: flag('block-lr', 1e-4), patience: flag('patience', 3), copies: flag('copies', 0) };
  const perClass = flag('train-per-class', 600);
  // A case name, optionally with its training photos per class: "px64", "px64:100".
  const builders: Record<string, (n?: number) => Promise<Case>> = {
    few10: () => catsdogs(10, null),
    few30: () => catsdogs(30, null),
    px64: (n) => catsdogs(n ?? perClass, 64),
    px32: (n) => catsdogs(n ?? perClass, 32),
    full: (n) => catsdogs(n ?? perClass, null),
    imagenet: () => imagenet(flag('min-images', 50)),
  };
  const names = listFlag('cases', ['few10', 'few30', 'px64', 'px64:100', 'imagenet']);
  const parse = (n: string) => [n.split(':')[0]!, n.includes(':') ? Number(n.split(':')[1]) : undefined] as const;
  for (const n of names) if (!builders[parse(n)[0]]) throw new Error(`unknown case "${n}": one of ${Object.keys(builders).join(', ')}`);
  console.log(
    `fine-tuning (last ${recipe.blocks} block(s), up to ${recipe.epochs} epochs, patience ${recipe.patience}, blocks at lr ${recipe.blockLr}, head at lr ${recipe.lr}${recipe.copies ? `, ${recipe.copies} flipped cop${recipe.copies > 1 ? 'ies' : 'y'} per training image at the cut` : ''}) against the linear probe, MobileNetV2-int8; load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
  console.log('| case | train | val | probe | start (epoch 0) | fine-tuned | Δ points | best epoch / run | s/epoch |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(2)}%`);
  for (const n of names) {
    const [name, count] = parse(n);
    const c = await builders[name]!(count);
    const started = performance.now();
    const r = await runCase(c, recipe);
    console.log(
      `| ${r.name} | ${r.train} | ${r.val} | ${pct(r.probe)} | ${pct(r.start)} | ${pct(r.finetuned)}${r.keptProbe ? ' (probe kept)' : ''} | ${(100 * (r.finetuned - r.probe)).toFixed(2)} | ${r.bestEpoch} / ${r.epochsRun} | ${r.epochSeconds?.toFixed(1) ?? '-'} |`,
    );
    console.error(`  (${n}: ${((performance.now() - started) / 1000).toFixed(0)} s, load ${os.loadavg()[0]!.toFixed(1)})`);
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
