// `node dist/bench/finetune.js [--images 512] [--blocks 3] [--epochs 2] [--reps 2] [--no-torch] [--rss] [--rss-steps 60]`
//
// One fine-tuning epoch of the fixtures' MobileNetV2 (last N blocks and the
// final 1×1 conv trainable, a linear head), tlpipe against PyTorch, side by
// side in one run:
//   tlpipe  the backbone.finetune loop (src/finetune/train.ts): the unfrozen
//           top only, its input the cached activations at the cut, read from
//           an activations file in batches (8-bit codes, as the int8
//           backbone's cut stores them);
//   torch   bench/finetune_torch.py: torchvision's MobileNetV2, the bottom
//           frozen with requires_grad = False and recomputed every epoch,
//           from tensors in memory and from JPEGs decoded each epoch.
// An epoch is the training steps and then a validation pass over the same
// number of rows on both sides, as the stage and the usual scripts do.
// Prints seconds per epoch (medians over reps) and the ratios torch / tlpipe,
// computed per rep. With --rss: the fine-tuning process's peak RSS over
// 2,000 and 20,000 activation rows, the same number of steps each; the rows
// are generated into an activations file by another process first, so the
// figure is the training loop's own (activations streamed from the file).
// Needs the fixtures and, for the torch side, Debian's python3-torch and
// python3-torchvision. Bench tooling, never in CI.
import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { type ActivationCodes, ActivationReader, type ActivationRows } from '../src/artifacts/activations.js';
import type { Artifact } from '../src/runner/step.js';
import { splitBackbone } from '../src/finetune/split.js';
import { EVAL_ROWS } from '../src/finetune/engine.js';
import { finetune } from '../src/finetune/train.js';
import { Prng } from '../src/train/prng.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const fixtures = process.env.TLPIPE_FIXTURES ?? path.resolve(repo, '..', 'shared', 'fixtures');

interface ChildJob {
  rows: number;
  blocks: number;
  epochs: number;
  /** Stop after this many steps (for RSS over many rows); 0: whole epochs. */
  maxSteps: number;
}

interface ChildResult {
  epochSeconds: number[];
  maxRssMB: number;
  steps: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * In its own process: an activations file of `rows` training rows and a tenth (at least 512)
 * as many validation rows after them, written as the stage writes a quantized
 * cut (8-bit codes and rows.json), generated and appended a slice at a time so
 * this process never holds the matrix either. Values on the cut's grid,
 * within its ReLU6 range.
 */
async function makeActivations(job: ChildJob & { dir: string }): Promise<{ width: number; featureWidth: number; codes: ActivationCodes }> {
  const bytes = new Uint8Array(await readFile(path.join(fixtures, 'models', 'mobilenetv2-12-int8.onnx')));
  const split = await splitBackbone(bytes, { trainableBlocks: job.blocks });
  const width = split.bottom.featureWidth;
  const codes = split.codes!;
  const total = job.rows + valRows(job.rows);
  const rng = new Prng(1);
  const file = await open(path.join(job.dir, 'activations.q8'), 'w');
  try {
    const slice = new Uint8Array(500 * width);
    for (let r = 0; r < total; r += 500) {
      const n = Math.min(500, total - r);
      for (let i = 0; i < n * width; i++) slice[i] = codes.zeroPoint + rng.below(256 - codes.zeroPoint);
      await file.write(slice, 0, n * width);
    }
  } finally {
    await file.close();
  }
  const table: ActivationRows = { width, rows: Array.from({ length: total }, (_, i) => i), failed: [], codes };
  await writeFile(path.join(job.dir, 'rows.json'), JSON.stringify(table));
  return { width, featureWidth: split.featureWidth, codes };
}

// At least two full evaluation batches at every size, so each run meets the same batch shapes.
const valRows = (rows: number) => Math.max(2 * EVAL_ROWS, Math.round(rows / 10));

/**
 * In a fresh child process: fine-tune over the activations file another
 * process wrote (`dir`), reading rows from it as backbone.finetune does;
 * epoch times and peak RSS. The validation split is scored at the warm start
 * (streamed like training); `maxSteps` stops training after that many steps.
 */
async function child(job: ChildJob & { dir: string }): Promise<ChildResult> {
  const bytes = new Uint8Array(await readFile(path.join(fixtures, 'models', 'mobilenetv2-12-int8.onnx')));
  const split = await splitBackbone(bytes, { trainableBlocks: job.blocks });
  const table = JSON.parse(await readFile(path.join(job.dir, 'rows.json'), 'utf8')) as ActivationRows;
  const artifact = { file: (name: string) => path.join(job.dir, name) } as unknown as Artifact;
  const reader = await ActivationReader.open(artifact, table);
  const rng = new Prng(1);
  const head = { layers: [{ inFeatures: split.featureWidth, outFeatures: 2, weight: Float32Array.from({ length: 2 * split.featureWidth }, () => (rng.uniform() - 0.5) * 0.05), bias: new Float32Array(2) }] };
  let steps = 0;
  const stop = new AbortController();
  const val = valRows(job.rows);
  const labelOf = (i: number) => i % 2;
  try {
    const result = await finetune({
      top: split.top,
      head,
      fetch: async (rows, out) => {
        // Training rows come first in the file, the validation rows after them.
        if (rows[0]! < job.rows && job.maxSteps && ++steps > job.maxSteps) stop.abort(new Error('enough steps'));
        await reader.read(rows, out);
      },
      train: { rows: Int32Array.from({ length: job.rows }, (_, i) => i), labels: Int32Array.from({ length: job.rows }, (_, i) => labelOf(i)) },
      val: { rows: Int32Array.from({ length: val }, (_, i) => job.rows + i), labels: Int32Array.from({ length: val }, (_, i) => labelOf(job.rows + i)) },
      spec: { epochs: job.epochs, batchSize: 32, lr: 1e-4, blockLr: 1e-5, weightDecay: 0.01, patience: null, seed: 0, device: 'cpu' },
      signal: stop.signal,
    }).catch((e) => {
      if (!stop.signal.aborted) throw e;
      return undefined;
    });
    return {
      epochSeconds: result ? result.history.filter((e) => e.epoch > 0).map((e) => e.seconds) : [],
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      steps: Math.min(steps, job.maxSteps || steps),
    };
  } finally {
    await reader.close();
  }
}

/** Writes the activations in one child process, then fine-tunes over them in a fresh one. */
async function inChild(job: ChildJob): Promise<ChildResult & { fileMB: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-ft-'));
  try {
    const spawn = async (mode: string) => {
      const { stdout } = await run(process.execPath, [fileURLToPath(import.meta.url), mode, JSON.stringify({ ...job, dir })], { maxBuffer: 1 << 24 });
      return JSON.parse(stdout.trim().split('\n').pop()!);
    };
    await spawn('--make');
    const { size } = await stat(path.join(dir, 'activations.q8'));
    return { ...((await spawn('--child')) as ChildResult), fileMB: size / 1e6 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function torchEpochs(images: number, blocks: number, epochs: number): Promise<{ tensors: number[]; jpegs: number[] }> {
  const dir = path.join(fixtures, 'datasets', 'catsdogs-2k', 'train');
  // The training photos, then as many validation photos as tlpipe's epoch scores (valRows): both epochs end with that pass.
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort().slice(0, images + valRows(images)).map((f) => path.join(dir, f));
  const list = path.join(os.tmpdir(), `tlpipe-bench-ft-files-${process.pid}.txt`);
  await writeFile(list, files.join('\n'));
  try {
    const { stdout } = await run('/usr/bin/python3', [path.join(repo, 'bench', 'finetune_torch.py'), '--files', list, '--images', String(images), '--blocks', String(blocks), '--epochs', String(epochs), '--val', String(valRows(images))], { maxBuffer: 1 << 24 });
    return JSON.parse(stdout.trim().split('\n').pop()!);
  } finally {
    await rm(list, { force: true });
  }
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  for (const [mode, work] of [['--make', makeActivations], ['--child', child]] as const) {
    const at = process.argv.indexOf(mode);
    if (at >= 0) {
      console.log(JSON.stringify(await work(JSON.parse(process.argv[at + 1]!) as ChildJob & { dir: string })));
      return;
    }
  }
  const images = flag('images', 512);
  const blocks = flag('blocks', 3); // backbone.split's default trainableBlocks
  const epochs = flag('epochs', 2);
  const reps = flag('reps', 2);
  const withTorch = !process.argv.includes('--no-torch');
  console.log(`fine-tuning epoch, MobileNetV2, last ${blocks} block(s) + final conv + linear head, ${images} images, batch 32, ${os.availableParallelism()} cores, load ${os.loadavg()[0]!.toFixed(1)}`);
  const ours: number[] = [];
  const tensorsRatio: number[] = [];
  const jpegsRatio: number[] = [];
  const torchT: number[] = [];
  const torchJ: number[] = [];
  for (let r = 0; r < reps; r++) {
    const mine = await inChild({ rows: images, blocks, epochs, maxSteps: 0 });
    const t = median(mine.epochSeconds);
    ours.push(t);
    let line = `rep ${r + 1}: tlpipe ${t.toFixed(2)} s/epoch (peak RSS ${mine.maxRssMB.toFixed(0)} MB)`;
    if (withTorch) {
      const torch = await torchEpochs(images, blocks, epochs);
      const [tt, tj] = [median(torch.tensors), median(torch.jpegs)];
      torchT.push(tt);
      torchJ.push(tj);
      tensorsRatio.push(tt / t);
      jpegsRatio.push(tj / t);
      line += ` | torch ${tt.toFixed(2)} s from tensors (${(tt / t).toFixed(1)}×), ${tj.toFixed(2)} s decoding JPEGs (${(tj / t).toFixed(1)}×)`;
    }
    console.log(line);
  }
  if (reps > 0) console.log(`median: tlpipe ${median(ours).toFixed(2)} s/epoch` + (withTorch ? ` | torch ${median(torchT).toFixed(2)} s (tensors), ${median(torchJ).toFixed(2)} s (JPEGs)` : ''));
  if (process.argv.includes('--rss')) {
    for (const rows of [2000, 20000]) {
      const r = await inChild({ rows, blocks, epochs: 1, maxSteps: flag('rss-steps', 60) });
      console.log(
        `peak RSS of the fine-tuning process over ${rows} training rows (+ ${valRows(rows)} validation rows scored, ${r.steps} training steps; activations file ${r.fileMB.toFixed(0)} MB, written by another process): ${r.maxRssMB.toFixed(0)} MB`,
      );
    }
  }
  if (withTorch && reps > 0) console.log(`finetune epoch: tlpipe ${median(tensorsRatio).toFixed(1)}× faster than PyTorch from tensors in memory, ${median(jpegsRatio).toFixed(1)}× faster than PyTorch decoding JPEGs (median of per-rep ratios)`);
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
