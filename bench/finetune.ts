// `node dist/bench/finetune.js [--images 512] [--blocks 1] [--epochs 2] [--reps 2] [--no-torch] [--rss]`
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
// Prints seconds per epoch (medians over reps) and the ratios torch / tlpipe,
// computed per rep. With --rss: the fine-tuning process's peak RSS over
// 2,000 and 20,000 activation rows (generated), the same number of steps each.
// Needs the fixtures and, for the torch side, Debian's python3-torch and
// python3-torchvision. Bench tooling, never in CI.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { ActivationReader, writeActivations } from '../src/artifacts/activations.js';
import type { Artifact } from '../src/runner/step.js';
import { splitBackbone } from '../src/finetune/split.js';
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

/** In a child process: fine-tune over `rows` generated activation rows; epoch times and peak RSS. */
async function child(job: ChildJob): Promise<ChildResult> {
  const bytes = new Uint8Array(await readFile(path.join(fixtures, 'models', 'mobilenetv2-12-int8.onnx')));
  const split = await splitBackbone(bytes, { trainableBlocks: job.blocks });
  const width = split.bottom.featureWidth;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-ft-'));
  try {
    const codes = split.codes!;
    const rng = new Prng(1);
    // Values on the cut's grid, within its ReLU6 range, so the file is what the stage writes.
    const matrix = new Float32Array(job.rows * width);
    for (let i = 0; i < matrix.length; i++) matrix[i] = rng.below(256 - codes.zeroPoint) * codes.scale;
    const val = 32;
    await writeActivations(dir, matrix, { width, rows: Array.from({ length: job.rows }, (_, i) => i), failed: [], codes });
    const artifact = { file: (name: string) => path.join(dir, name) } as unknown as Artifact;
    const reader = await ActivationReader.open(artifact, { width, rows: Array.from({ length: job.rows }, (_, i) => i), failed: [], codes });
    const head = { layers: [{ inFeatures: split.featureWidth, outFeatures: 2, weight: Float32Array.from({ length: 2 * split.featureWidth }, () => (rng.uniform() - 0.5) * 0.05), bias: new Float32Array(2) }] };
    let steps = 0;
    const stop = new AbortController();
    const labels = Int32Array.from({ length: job.rows }, (_, i) => i % 2);
    const result = await finetune({
      top: split.top,
      head,
      fetch: async (rows, out) => {
        // The first read is the warm start's validation; then one read per step.
        if (job.maxSteps && ++steps > job.maxSteps + 1) stop.abort(new Error('enough steps'));
        await reader.read(rows, out);
      },
      train: { rows: Int32Array.from({ length: job.rows }, (_, i) => i), labels },
      val: { rows: Int32Array.from({ length: val }, (_, i) => i), labels: labels.subarray(0, val) },
      spec: { epochs: job.epochs, batchSize: 32, lr: 1e-4, blockLr: 1e-5, weightDecay: 0.01, patience: null, seed: 0, device: 'cpu' },
      signal: stop.signal,
    }).catch((e) => {
      if (!stop.signal.aborted) throw e;
      return undefined;
    });
    await reader.close();
    return {
      epochSeconds: result ? result.history.filter((e) => e.epoch > 0).map((e) => e.seconds) : [],
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      steps,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function inChild(job: ChildJob): Promise<ChildResult> {
  const { stdout } = await run(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(job)], { maxBuffer: 1 << 24 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult;
}

async function torchEpochs(images: number, blocks: number, epochs: number): Promise<{ tensors: number[]; jpegs: number[] }> {
  const dir = path.join(fixtures, 'datasets', 'catsdogs-2k', 'train');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort().slice(0, images).map((f) => path.join(dir, f));
  const list = path.join(os.tmpdir(), `tlpipe-bench-ft-files-${process.pid}.txt`);
  await writeFile(list, files.join('\n'));
  try {
    const { stdout } = await run('/usr/bin/python3', [path.join(repo, 'bench', 'finetune_torch.py'), '--files', list, '--images', String(images), '--blocks', String(blocks), '--epochs', String(epochs)], { maxBuffer: 1 << 24 });
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
  const childAt = process.argv.indexOf('--child');
  if (childAt >= 0) {
    console.log(JSON.stringify(await child(JSON.parse(process.argv[childAt + 1]!) as ChildJob)));
    return;
  }
  const images = flag('images', 512);
  const blocks = flag('blocks', 1);
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
  console.log(`median: tlpipe ${median(ours).toFixed(2)} s/epoch` + (withTorch ? ` | torch ${median(torchT).toFixed(2)} s (tensors), ${median(torchJ).toFixed(2)} s (JPEGs)` : ''));
  if (process.argv.includes('--rss')) {
    for (const rows of [2000, 20000]) {
      const r = await inChild({ rows, blocks, epochs: 1, maxSteps: 60 });
      console.log(`peak RSS fine-tuning over ${rows} activation rows (${r.steps - 1} steps): ${r.maxRssMB.toFixed(0)} MB`);
    }
  }
  if (withTorch) console.log(`finetune epoch: tlpipe ${median(tensorsRatio).toFixed(1)}× faster than PyTorch from tensors in memory, ${median(jpegsRatio).toFixed(1)}× faster than PyTorch decoding JPEGs (median of per-rep ratios)`);
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
