// `node dist/bench/finetune-accuracy.js [--epochs 10] [--blocks 1] [--imagenet]`
//
// Fine-tuning against the best linear probe (head.train's default: L-BFGS,
// weightDecay chosen on the validation split) on cases harder than
// catsdogs-2k at full resolution, each run through
// pipelines/catsdogs-finetune.yaml as a user would:
//   - few-shot subsets: 10 and 50 training photos per class;
//   - catsdogs at 64 px: every photo shrunk to a shorter side of 64 pixels
//     first (the pipeline then resizes it up to 224 again), so the
//     pretrained features lose what they were trained to see;
//   - with --imagenet, a many-class split: the photos labelled by the
//     backbone's own top ImageNet class on the whole squashed photo (the
//     classes with at least 20 photos; bench/accuracy-data.ts), trained on
//     centre crops.
// The validation split is the same 200 photos per class for the catsdogs cases.
// Prints one row per case: the probe's and the fine-tuned model's validation
// accuracy, the best epoch, whether the probe was kept. Bench tooling, never in CI.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { extractFixtureFeatures } from './accuracy-data.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const bin = path.join(repo, 'dist', 'src', 'bin.cjs');
const fixtures = process.env.TLPIPE_FIXTURES ?? path.resolve(repo, '..', 'shared', 'fixtures');
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

async function catsdogs(trainPerClass: number, shrinkTo: number | null): Promise<Case> {
  const dir = path.join(fixtures, 'datasets', 'catsdogs-2k', 'train');
  const names = (await readdir(dir)).filter((f) => f.endsWith('.jpg'));
  const of = (c: string, from: number, count: number) =>
    names.filter((f) => f.startsWith(`${c}.`)).map((f) => [Number(f.split('.')[1]), f] as const).filter(([i]) => i >= from && i < from + count).map(([, f]) => path.join(dir, f));
  const classes = ['cat', 'dog'];
  return {
    name: `catsdogs${shrinkTo ? ` at ${shrinkTo} px` : ''}, ${trainPerClass} per class`,
    slug: `catsdogs-${shrinkTo ?? 'full'}-${trainPerClass}`,
    files: { train: new Map(classes.map((c) => [c, of(c, 0, trainPerClass)])), val: new Map(classes.map((c) => [c, of(c, 800, 200)])) },
    shrinkTo,
  };
}

async function imagenetCase(): Promise<Case> {
  const x = await extractFixtureFeatures((l) => console.log(`  ${l}`));
  const labelled: { path: string; top: number }[] = [];
  for (const split of ['train', 'val', 'test'] as const) {
    const l = x.logits[split];
    l.images.forEach((img, i) => {
      let top = 0;
      for (let c = 1; c < 1000; c++) if (l.features[i * 1000 + c]! > l.features[i * 1000 + top]!) top = c;
      labelled.push({ path: img.path, top });
    });
  }
  const byClass = new Map<number, string[]>();
  for (const r of labelled) byClass.set(r.top, [...(byClass.get(r.top) ?? []), r.path]);
  const kept = [...byClass].filter(([, files]) => files.length >= 20).sort((a, b) => a[0] - b[0]);
  const train = new Map<string, string[]>();
  const val = new Map<string, string[]>();
  for (const [c, files] of kept) {
    const cut = Math.round(files.length * 0.7);
    train.set(`n${c}`, files.slice(0, cut));
    val.set(`n${c}`, files.slice(cut));
  }
  return { name: `imagenet-top1, ${kept.length} classes`, slug: 'imagenet', files: { train, val }, shrinkTo: null };
}

async function materialise(c: Case): Promise<string> {
  const data = path.join(benchDir, c.slug, 'data');
  for (const [split, byClass] of Object.entries(c.files)) {
    for (const [label, files] of byClass) {
      const folder = path.join(data, split, label);
      await mkdir(folder, { recursive: true });
      for (const [i, file] of files.entries()) {
        const to = path.join(folder, `${i}.jpg`);
        if (existsSync(to)) continue;
        if (c.shrinkTo) await writeFile(to, await sharp(file).resize({ width: c.shrinkTo, height: c.shrinkTo, fit: 'outside' }).jpeg({ quality: 95 }).toBuffer());
        else await symlink(file, to);
      }
    }
  }
  return data;
}

interface Row {
  name: string;
  train: number;
  val: number;
  probe: number;
  finetuned: number;
  bestEpoch: number;
  keptProbe: boolean;
  epochSeconds: number | null;
}

async function runCase(c: Case, epochs: number, blocks: number): Promise<Row> {
  const data = await materialise(c);
  const project = path.join(benchDir, c.slug);
  await writeFile(path.join(project, 'package.json'), '{"private": true}\n');
  await mkdir(path.join(project, 'pipelines'), { recursive: true });
  await copyFile(path.join(repo, 'pipelines', 'catsdogs-finetune.yaml'), path.join(project, 'pipelines', 'catsdogs-finetune.yaml'));
  const { stdout } = await run(
    process.execPath,
    [bin, 'run', 'pipelines/catsdogs-finetune.yaml', '--json', '--set', `data=${data}`, '--set', `epochs=${epochs}`, '--set', `blocks=${blocks}`, '--set', 'device=cpu'],
    { cwd: project, env: { ...process.env, CI: 'true', TLPIPE_MODELS: path.join(fixtures, 'models') }, maxBuffer: 64 * 1024 * 1024 },
  );
  const m = (JSON.parse(stdout) as { metrics: Record<string, Record<string, number | boolean | null>> }).metrics;
  const count = (split: 'train' | 'val') => [...c.files[split].values()].reduce((a, f) => a + f.length, 0);
  return {
    name: c.name,
    train: count('train'),
    val: count('val'),
    probe: m.train!.valAccuracy as number,
    finetuned: m.finetune!.valAccuracy as number,
    bestEpoch: m.finetune!.bestEpoch as number,
    keptProbe: m.finetune!.keptProbe as boolean,
    epochSeconds: m.finetune!.epochSeconds as number | null,
  };
}

async function main(): Promise<void> {
  const epochs = flag('epochs', 10);
  const blocks = flag('blocks', 1);
  const cases = [await catsdogs(10, null), await catsdogs(50, null), await catsdogs(50, 64), await catsdogs(200, 64)];
  if (process.argv.includes('--imagenet')) cases.push(await imagenetCase());
  console.log(`fine-tuning (last ${blocks} block(s), up to ${epochs} epochs, patience 3) against the linear probe, MobileNetV2-int8; load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log('| case | train | val | probe | fine-tuned | Δ points | best epoch | s/epoch |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const c of cases) {
    const r = await runCase(c, epochs, blocks);
    const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
    console.log(
      `| ${r.name} | ${r.train} | ${r.val} | ${pct(r.probe)} | ${pct(r.finetuned)}${r.keptProbe ? ' (probe kept)' : ''} | ${(100 * (r.finetuned - r.probe)).toFixed(2)} | ${r.bestEpoch} | ${r.epochSeconds?.toFixed(1) ?? '-'} |`,
    );
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
