// How the feature stage splits the machine's cores between image decoding
// (libuv threadpool + libvips) and onnxruntime. Both compete for the same
// cores, so the defaults give each side every core and rely on the OS to
// interleave them, with onnxruntime's spin-waiting turned off so neither side
// burns cycles while idle. Measured on 2 cores: see bench/README.md.
import os from 'node:os';

export interface ThreadPlan {
  /** Inference workers, each with its own onnxruntime session. */
  workers: number;
  /** onnxruntime intra-op threads per worker. */
  intraOpThreads: number;
  /** Images decoded at the same time. */
  loadConcurrency: number;
  /** Loader worker threads, when the loader runs from a module (ExtractOptions.loaderModule). */
  loaderThreads: number;
  /** libvips threads per image (sharp.concurrency): 1, since images decode in parallel already. */
  libvipsThreads: number;
  /**
   * libuv threadpool size the process should start with: decoders run on it, so
   * it must be at least loadConcurrency (plus one for file reads). Only the
   * environment the process starts with can set it: loading ES modules already
   * starts the pool, so assigning process.env.UV_THREADPOOL_SIZE in code is too late.
   */
  uvThreadpoolSize: number;
}

export function planThreads(overrides: Partial<ThreadPlan> = {}, parallelism = os.availableParallelism()): ThreadPlan {
  const cores = Math.max(1, parallelism);
  const workers = overrides.workers ?? 1;
  const intraOpThreads = overrides.intraOpThreads ?? Math.max(1, Math.floor(cores / workers));
  const loadConcurrency = overrides.loadConcurrency ?? cores + 1;
  return {
    workers,
    intraOpThreads,
    loadConcurrency,
    loaderThreads: overrides.loaderThreads ?? Math.min(cores, loadConcurrency),
    libvipsThreads: overrides.libvipsThreads ?? 1,
    uvThreadpoolSize: overrides.uvThreadpoolSize ?? Math.max(4, loadConcurrency + 1),
  };
}

/** The libuv threadpool size this process runs with (Node's default is 4). */
export function currentUvThreadpoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/*
 * Spinning, chosen from measured costs. onnxruntime's idle intra-op threads
 * either spin-wait for the next operator (cheaper per operator) or sleep.
 * While decoders need the same cores, spinning steals their cycles: with
 * MobileNetV2-int8 (about 4 ms of inference CPU per image against 4.4 ms of
 * decoding) it cost 11-12 CPU ms per image against 8.4-9.2 without. When one
 * image's inference costs many times its decoding (ResNet-50 fp32: about 80 ms
 * against 4.4), decoding hardly competes and inference alone sets the pace,
 * so the settings inference alone prefers win: see docs/performance.md.
 */

/** CPU time to decode and transform one photo at 224×224 (catsdogs-2k, sharp + the PIL-exact resampler), measured on 2 cores. */
export const DECODE_CPU_MS_PER_IMAGE = 4.4;

/** Inference dominates when one image's inference costs at least this many times its decoding (decoding is then under 1/6 of the work). */
export const INFERENCE_DOMINATES_AT = 5;

export function inferenceDominates(inferenceCpuMsPerImage: number | undefined, decodeCpuMsPerImage = DECODE_CPU_MS_PER_IMAGE): boolean {
  return inferenceCpuMsPerImage !== undefined && inferenceCpuMsPerImage >= INFERENCE_DOMINATES_AT * decodeCpuMsPerImage;
}

/**
 * The first guess, before anything is timed: a model file this large (ResNet-50
 * fp32 is 94 MB, its int8 form 24 MB, MobileNetV2-int8 3.5 MB) is likely to
 * be inference-bound, so its session starts with spinning and is rarely made twice.
 */
export const LIKELY_INFERENCE_BOUND_BYTES = 20e6;

export function likelyInferenceBound(modelBytes: number | undefined): boolean {
  return modelBytes !== undefined && modelBytes >= LIKELY_INFERENCE_BOUND_BYTES;
}

/**
 * Spinning pays only when the cores are free for it: on a machine already
 * running more than this many threads per core (the 1-minute load average,
 * this process's own work included), idle spinning threads burn time slices
 * other processes are waiting for. Measured here at 95 % outside load with
 * ResNet-50 fp32: inference alone was fastest with spinning off.
 */
export const BUSY_LOAD_PER_CORE = 2;

export function machineBusy(loadAverage: number, cores = os.availableParallelism()): boolean {
  return loadAverage > BUSY_LOAD_PER_CORE * Math.max(1, cores);
}

/**
 * Spinning for a session that runs alone, with no decoding beside it (the
 * quantizer's calibration and check: their images are decoded first): the
 * choice inference alone prefers, which is spinning unless the machine is busy
 * (ResNet-50 fp32 on 2 idle cores: about 82 ms of CPU per image with it
 * against 97 without; at 95 % outside load the reverse).
 */
export function spinningAlone(loadAverage = os.loadavg()[0] ?? 0, cores = os.availableParallelism()): boolean {
  return !machineBusy(loadAverage, cores);
}
