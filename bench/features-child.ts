// One measurement in a fresh process, so that peak RSS and thread settings
// (UV_THREADPOOL_SIZE is read once, at the libuv pool's first use) belong to
// that measurement alone. Usage: node features-child.js '<Measurement JSON>'.
// Prints one line: RESULT <JSON>.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { type ChosenSettings, DEFAULT_BATCH_SIZE, extractFeatures, INFERENCE_BOUND_BATCH_SIZE, planThreads } from '../src/features/index.js';
import { sessionOptions } from '../src/onnx/runtime.js';
import { LoaderPool } from '../src/features/loader-pool.js';
import type { LoaderModule } from '../src/features/loader-protocol.js';
import { createLoader, type ImageNetLoaderOptions } from './imagenet-loader.js';
import { datasetFiles, modelPath, type DatasetRef } from './datasets.js';

export interface Tuning {
  batchSize?: number;
  intraOpThreads?: number;
  loadConcurrency?: number;
  workers?: number;
  batchesInFlight?: number;
  spinning?: boolean;
  libvipsThreads?: number;
  /** Keep sharp's operation cache (on by default in sharp; off here, since no file is decoded twice). */
  sharpCache?: boolean;
  /** Load on the main thread (ExtractOptions.load; the stage's default here) or in loader workers (loaderModule). */
  mainThreadLoader?: boolean;
  loaderThreads?: number;
}

export type Measurement =
  | { mode: 'decode'; dataset: DatasetRef; tuning: Tuning }
  | { mode: 'infer'; images: number; tuning: Tuning; model?: string }
  | { mode: 'extract'; dataset: DatasetRef; tuning: Tuning; model?: string };

/** The settings a measurement ran with: (b)'s fastest, or what (c) chose. */
export interface RanWith {
  spinning?: boolean;
  batchSize: number;
  inferenceCpuMsPerImage?: number;
  machineBusy?: boolean;
  loadAverage?: number;
}

export interface MeasurementResult {
  images: number;
  seconds: number;
  imagesPerSecond: number;
  /** Peak resident set size of the whole process, MiB. */
  peakRssMiB: number;
  /** CPU time used / (wall time × cores): how busy the machine was kept. */
  cpuBusy: number;
  /** CPU seconds (all threads) per image: the cost, which other users of the machine disturb less than wall time. */
  cpuMsPerImage: number;
  /** Resident set size (MiB) after each tenth of the images, for extract runs: flat if memory does not grow with the count. */
  rssTrace?: number[];
  /** Share of the machine's CPU time that other processes used meanwhile (from /proc/stat; 0 where unavailable). */
  outsideLoad: number;
  ranWith?: RanWith;
}

function currentRssMiB(): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.memoryUsage.rss() / 2 ** 20;
}

/** Busy and total CPU time of the whole machine, in clock ticks (Linux). */
function machineCpuTicks(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3]! + fields[4]!; // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

const IMAGE_SHAPE = [3, 224, 224] as const;
const IMAGE_ELEMENTS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2];

function loaderOptions(tuning: Tuning): ImageNetLoaderOptions {
  return {
    height: IMAGE_SHAPE[1],
    width: IMAGE_SHAPE[2],
    libvipsThreads: planThreads({ libvipsThreads: tuning.libvipsThreads }).libvipsThreads,
    sharpCache: tuning.sharpCache ?? false,
  };
}

const loaderModule = (tuning: Tuning): LoaderModule => ({
  url: new URL('./imagenet-loader.js', import.meta.url),
  options: loaderOptions(tuning),
});

/** The stage's loading, on the main thread or in loader workers, as one function. */
function imageLoader(tuning: Tuning): { load: (file: string, target: Float32Array, offset: number) => Promise<void>; close: () => Promise<void> } {
  if (tuning.mainThreadLoader) {
    const load = createLoader(loaderOptions(tuning));
    return { load, close: async () => {} };
  }
  const plan = planThreads({ loadConcurrency: tuning.loadConcurrency, loaderThreads: tuning.loaderThreads });
  const pool = new LoaderPool({
    module: loaderModule(tuning),
    threads: plan.loaderThreads,
    elements: IMAGE_ELEMENTS,
    onFatal: (err) => {
      throw err;
    },
  });
  return { load: (file, target, offset) => pool.load(file, target, offset), close: () => pool.close() };
}

/**
 * (a) decode + transform alone: the loader at the stage's load concurrency, into
 * reused buffers. Timed on the main thread and in loader workers (unless the
 * tuning fixes one); the faster counts, as the best this machine does.
 */
async function decode(files: string[], tuning: Tuning): Promise<{ imagesPerSecond: number; cpuMsPerImage: number }> {
  const plan = planThreads({ loadConcurrency: tuning.loadConcurrency });
  let best = { imagesPerSecond: 0, cpuMsPerImage: 0 };
  for (const mainThreadLoader of tuning.mainThreadLoader === undefined ? [true, false] : [tuning.mainThreadLoader]) {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const { load, close } = imageLoader({ ...tuning, mainThreadLoader });
    let next = 0;
    let loaded = 0;
    try {
      await Promise.all(
        Array.from({ length: plan.loadConcurrency }, async () => {
          const target = new Float32Array(IMAGE_ELEMENTS);
          while (next < files.length) {
            const file = files[next++]!;
            await load(file, target, 0).then(() => loaded++, () => {});
          }
        }),
      );
    } finally {
      await close();
    }
    const imagesPerSecond = loaded / ((performance.now() - started) / 1000);
    const cpu = process.cpuUsage(cpuBefore);
    if (imagesPerSecond > best.imagesPerSecond) {
      best = { imagesPerSecond, cpuMsPerImage: (cpu.user + cpu.system) / 1e3 / loaded };
    }
  }
  return best;
}

/**
 * (b) inference alone on ready tensors: one session on all cores, batches back
 * to back. Timed with and without onnxruntime's spin-waiting, at the stage's
 * batch size and at 32; the fastest counts, so the bound is the best this
 * machine does rather than the stage's own settings.
 */
async function infer(model: string, images: number, tuning: Tuning): Promise<{ imagesPerSecond: number; cpuMsPerImage: number; ranWith: RanWith }> {
  const plan = planThreads({ intraOpThreads: tuning.intraOpThreads });
  const batchSizes = tuning.batchSize ? [tuning.batchSize] : [...new Set([DEFAULT_BATCH_SIZE, INFERENCE_BOUND_BATCH_SIZE, 32])];
  let best = { imagesPerSecond: 0, cpuMsPerImage: 0, ranWith: { batchSize: 0 } as RanWith };
  for (const spinning of tuning.spinning === undefined ? [true, false] : [tuning.spinning]) {
    const session = await ort.InferenceSession.create(model, sessionOptions({ device: 'cpu', intraOpThreads: plan.intraOpThreads, spinning }));
    const inputName = session.inputNames[0]!;
    for (const batchSize of batchSizes) {
      const data = new Float32Array(batchSize * IMAGE_ELEMENTS);
      for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 2; // roughly the range of normalised pixels
      const feeds = { [inputName]: new ort.Tensor('float32', data, [batchSize, ...IMAGE_SHAPE]) };
      await session.run(feeds); // the first run allocates
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      let done = 0;
      while (done < images) {
        await session.run(feeds);
        done += batchSize;
      }
      const imagesPerSecond = done / ((performance.now() - started) / 1000);
      const cpu = process.cpuUsage(cpuBefore);
      if (imagesPerSecond > best.imagesPerSecond) {
        best = { imagesPerSecond, cpuMsPerImage: (cpu.user + cpu.system) / 1e3 / done, ranWith: { spinning, batchSize } };
      }
    }
    await session.release();
  }
  return best;
}

/** (c) the feature stage as tlpipe runs it: extractFeatures with the project's image loader. */
async function extract(model: string, files: string[], tuning: Tuning, rssTrace: number[], chosen: { settings?: ChosenSettings }): Promise<number> {
  let images = 0;
  let checksum = 0;
  let nextTrace = 1;
  for await (const batch of extractFeatures({
    modelPath: model,
    items: files,
    onSettings: (settings) => (chosen.settings = settings),
    ...(tuning.mainThreadLoader ?? true ? { load: createLoader(loaderOptions(tuning)) } : { loaderModule: loaderModule(tuning) }),
    loaderThreads: tuning.loaderThreads,
    inputShape: [...IMAGE_SHAPE],
    batchSize: tuning.batchSize,
    intraOpThreads: tuning.intraOpThreads,
    loadConcurrency: tuning.loadConcurrency,
    workers: tuning.workers,
    batchesInFlight: tuning.batchesInFlight,
    spinning: tuning.spinning,
    onError: () => {},
    onProgress: (done, total) => {
      if (total && done >= (nextTrace * total) / 10) {
        rssTrace.push(currentRssMiB());
        nextTrace = Math.floor((done * 10) / total) + 1;
      }
    },
  })) {
    images += batch.items.length;
    checksum += batch.features[0]!; // a consumer that reads its features
  }
  if (!Number.isFinite(checksum)) throw new Error('features are not finite');
  return images;
}

async function main(): Promise<void> {
  const m = JSON.parse(process.argv[2] ?? '') as Measurement;
  const plan = planThreads({ libvipsThreads: m.tuning.libvipsThreads });
  sharp.concurrency(plan.libvipsThreads);
  sharp.cache(m.tuning.sharpCache ?? false);

  const files = m.mode === 'infer' ? [] : await datasetFiles(m.dataset);
  const cpuBefore = process.cpuUsage();
  const machineBefore = machineCpuTicks();
  const started = performance.now();
  let images: number;
  // (a) and (b) time their best variant themselves; (c) is timed here, whole.
  let alone: { imagesPerSecond: number; cpuMsPerImage: number; ranWith?: RanWith } | undefined;
  const rssTrace: number[] = [];
  const chosen: { settings?: ChosenSettings } = {};
  const model = m.mode === 'decode' ? modelPath : (m.model ?? modelPath);
  if (m.mode === 'decode') {
    images = files.length;
    alone = await decode(files, m.tuning);
  } else if (m.mode === 'extract') {
    images = await extract(model, files, m.tuning, rssTrace, chosen);
  } else {
    images = m.images;
    alone = await infer(model, m.images, m.tuning);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const machineAfter = machineCpuTicks();
  const cpuBusy = (cpu.user + cpu.system) / 1e6 / seconds / os.availableParallelism();
  const machineBusy =
    machineBefore && machineAfter && machineAfter.total > machineBefore.total
      ? (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)
      : undefined;
  const result: MeasurementResult = {
    images,
    seconds,
    imagesPerSecond: alone?.imagesPerSecond ?? images / seconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    cpuBusy,
    ...(m.mode === 'extract' ? { rssTrace } : {}),
    outsideLoad: machineBusy === undefined ? 0 : Math.max(0, machineBusy - cpuBusy),
    cpuMsPerImage: alone?.cpuMsPerImage ?? (cpu.user + cpu.system) / 1e3 / images,
    ...(alone?.ranWith ? { ranWith: alone.ranWith } : chosen.settings ? { ranWith: { ...chosen.settings, spinning: chosen.settings.spinning ?? m.tuning.spinning ?? false } } : {}),
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

await main();
