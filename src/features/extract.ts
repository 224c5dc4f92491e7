// Streams a frozen backbone's forward pass over an image dataset.
//
// Items are pulled from the source only when a load slot is free; each image is
// decoded straight into its row of a batch buffer; a full batch is transferred
// to an inference worker while the next one is being decoded. At most
// `batchesInFlight` batches exist at once (filling, queued, running or waiting to
// be consumed), so memory does not grow with the number of images.
import os from 'node:os';
import { abortReason, BufferPool, OrderedQueue, raceAbort, Semaphore } from './async-primitives.js';
import { DEFAULT_BATCH_SIZE, DEFAULT_CUDA_BATCH_SIZE, INFERENCE_BOUND_BATCH_SIZE } from './batch-size.js';
import { InferencePool } from './inference-pool.js';
import { LoaderPool, type LoaderModule } from './loader-pool.js';
import { fixedImageShape, modelLabel } from './model-info.js';
import type { Device } from '../onnx/runtime.js';
import { currentUvThreadpoolSize, DECODE_CPU_MS_PER_IMAGE, planThreads } from './threads.js';
import type { ModelInfo, TensorInfo } from './worker-protocol.js';

/**
 * Fills one image's input tensor (`elements` floats, CHW order for the usual
 * NCHW model) into `target` starting at `offset`, or returns it as a new array
 * (which the extractor copies in). A rejection skips the image, it does not stop the run.
 */
export type ImageLoader<T> = (
  item: T,
  target: Float32Array,
  offset: number,
  signal: AbortSignal,
) => Promise<void | Float32Array>;

export interface ExtractOptions<T> {
  /** The backbone as an ONNX file path. Give this or `modelBytes`. */
  modelPath?: string;
  /** The backbone as ONNX bytes. */
  modelBytes?: Uint8Array;
  /** The images, in the order results should come out. Pulled lazily. */
  items: Iterable<T> | AsyncIterable<T>;
  /** Loads on the main thread. Give this or `loaderModule`. */
  load?: ImageLoader<T>;
  /**
   * Loads in worker threads, from a module whose factory returns the loader.
   * For loaders with real JavaScript work per image (an exact resampler, a
   * float conversion): on the main thread that work runs on one core and
   * stalls the pipeline; here it spreads over `loaderThreads`. Items must
   * survive structured cloning (file paths do).
   */
  loaderModule?: LoaderModule;
  /** Loader worker threads with `loaderModule`. Default: see planThreads. */
  loaderThreads?: number;
  /** Defaults to the model's only input. */
  inputName?: string;
  /** Defaults to the model's first output. */
  outputName?: string;
  /**
   * One image's input shape without the batch dimension ([C, H, W] for NCHW), or
   * its element count. Defaults to the model's input shape when fully fixed.
   * Giving it lets decoding start while the model is still loading.
   */
  inputShape?: readonly number[] | number;
  /**
   * Images per inference call. Default: the model's fixed batch size; 64 with
   * CUDA; on the CPU 8, or 16 when inference dominates (see `spinning`).
   */
  batchSize?: number;
  /** Batches that may exist at once: filling, queued, running, or not yet consumed. Default workers + 2. */
  batchesInFlight?: number;
  /** onnxruntime intra-op threads per worker. Default: see planThreads. */
  intraOpThreads?: number;
  /** Images loading at the same time. Default: see planThreads. */
  loadConcurrency?: number;
  /** Inference workers (one session each). Default 1. */
  workers?: number;
  /**
   * Let onnxruntime's idle threads spin-wait. Default on the CPU: chosen from a
   * timed run when the session starts (threads.ts): on when one image's
   * inference costs so much more than its decoding that inference alone sets
   * the pace, off when decoders need those cycles.
   */
  spinning?: boolean;
  /** The machine's load average that spinning is weighed against (threads.ts, machineBusy). Default: os.loadavg()'s 1-minute figure. */
  loadAverage?: number;
  device?: Device;
  /**
   * Inference workers already started on this model, kept by the caller across
   * calls (a queue worker's jobs): saves the session start per call. Not closed here.
   */
  pool?: InferencePool;
  signal?: AbortSignal;
  /** Called after each batch: images finished so far (extracted or skipped), and the total when known. */
  onProgress?: (done: number, total: number | undefined) => void;
  /** Called once the batch size is known, with the settings chosen for this run. */
  onSettings?: (settings: ChosenSettings) => void;
  /** Called when an image fails to load; the image is skipped. Default: a process warning. */
  onError?: (item: T, error: unknown) => void;
}

/** What the extractor chose where the caller left it free. */
export interface ChosenSettings {
  batchSize: number;
  /** onnxruntime's spinning, when the session chose it (undefined: the caller's setting). */
  spinning?: boolean;
  /** The timed run's CPU cost per image, when the session chose spinning and could time it. */
  inferenceCpuMsPerImage?: number;
  /** Whether inference dominates (decides the batch size), and whether the machine was too busy for spinning. */
  inferenceDominates?: boolean;
  machineBusy?: boolean;
  loadAverage?: number;
}

export interface FeatureBatch<T> {
  /** The batch's images that loaded, in input order. */
  items: T[];
  /** items.length rows of featureWidth values each. */
  features: Float32Array;
  featureWidth: number;
}

/** Options resolved against the model: what every batch needs to know. */
interface Layout {
  inputName: string;
  outputName: string;
  imageShape: number[];
  /** The model's batch dimension when it is a fixed number. */
  fixedBatch: number | undefined;
}

/**
 * Runs the model over every item and yields feature batches in input order.
 * Stopping early (break), an error or an abort shuts the workers down.
 */
export async function* extractFeatures<T>(opts: ExtractOptions<T>): AsyncGenerator<FeatureBatch<T>, void, undefined> {
  const model = opts.modelPath ?? opts.modelBytes;
  if (model === undefined || (opts.modelPath !== undefined && opts.modelBytes !== undefined)) {
    throw new TypeError('extractFeatures: give exactly one of modelPath or modelBytes');
  }
  if ((opts.load === undefined) === (opts.loaderModule === undefined)) {
    throw new TypeError('extractFeatures: give exactly one of load or loaderModule');
  }
  const label = modelLabel(model);
  const plan = planThreads({
    workers: opts.workers,
    intraOpThreads: opts.intraOpThreads,
    loadConcurrency: opts.loadConcurrency,
    loaderThreads: opts.loaderThreads,
  });
  const batchesInFlight = opts.batchesInFlight ?? plan.workers + 2;
  positiveInteger('batchSize', opts.batchSize);
  positiveInteger('batchesInFlight', batchesInFlight);
  positiveInteger('loadConcurrency', plan.loadConcurrency);
  positiveInteger('intraOpThreads', plan.intraOpThreads);
  positiveInteger('workers', plan.workers);
  positiveInteger('loaderThreads', plan.loaderThreads);

  warnIfThreadpoolTooSmall(plan.loadConcurrency, opts.loadConcurrency !== undefined);

  const stop = new AbortController();
  const onUserAbort = () => stop.abort(abortReason(opts.signal!));
  if (opts.signal?.aborted) throw abortReason(opts.signal);
  opts.signal?.addEventListener('abort', onUserAbort, { once: true });

  const pool = opts.pool ?? new InferencePool({
    model,
    modelLabel: label,
    settings: { device: opts.device ?? 'cpu', intraOpThreads: plan.intraOpThreads, spinning: opts.spinning ?? false },
    workers: plan.workers,
    ...(opts.spinning === undefined
      ? { chooseSpinning: { decodeCpuMsPerImage: DECODE_CPU_MS_PER_IMAGE, loadAverage: opts.loadAverage ?? os.loadavg()[0]! } }
      : {}),
  });
  const batches = new OrderedQueue<SettledBatch<T>>();
  const tickets = new Semaphore(batchesInFlight);
  const total = Array.isArray(opts.items) ? opts.items.length : undefined;
  const loaders: LoaderWorkers = {
    threads: plan.loaderThreads,
    onFatal: (err) => stop.abort(err),
  };
  const producer = produceBatches(opts, pool, loaders, label, batches, tickets, plan.loadConcurrency, stop.signal);
  let done = 0;

  try {
    for (;;) {
      const next = await raceAbort(batches.shift(), stop.signal);
      if (next.done) break;
      const batch = next.value;
      done += batch.settledCount;
      opts.onProgress?.(done, total);
      if (batch.result) yield batch.result;
      tickets.release();
    }
  } finally {
    opts.signal?.removeEventListener('abort', onUserAbort);
    stop.abort(new Error('feature extraction finished'));
    await Promise.all([opts.pool ? undefined : pool.close(), loaders.pool?.close()]);
    await producer;
    // The producer may have started loader workers after the line above read loaders.pool.
    await loaders.pool?.close();
  }
}

let threadpoolWarned = false;

/**
 * Image loaders such as sharp decode on libuv's threadpool: with fewer pool
 * threads than loads in flight, decoding silently runs narrower than planned.
 * Only the environment at process start can size the pool.
 */
function warnIfThreadpoolTooSmall(loadConcurrency: number, explicit: boolean): void {
  const pool = currentUvThreadpoolSize();
  if (threadpoolWarned || explicit || loadConcurrency <= pool) return;
  threadpoolWarned = true;
  process.emitWarning(
    `image decoding is capped at ${pool} images at a time by libuv's threadpool on this ` +
      `${os.availableParallelism()}-core machine; start Node with UV_THREADPOOL_SIZE=${loadConcurrency + 1} for full speed`,
    { code: 'TLPIPE_UV_THREADPOOL' },
  );
}

function positiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`extractFeatures: ${name} must be a positive integer, got ${value}`);
  }
}

/** Checks the options against what the session reports, once it has loaded. */
function resolveLayout<T>(opts: ExtractOptions<T>, info: ModelInfo, label: string): Layout {
  const names = (list: { name: string }[]) => list.map((v) => `"${v.name}"`).join(', ');
  let input: TensorInfo | undefined = info.inputs[0];
  if (opts.inputName !== undefined) {
    input = info.inputs.find((v) => v.name === opts.inputName);
    if (!input) throw new Error(`${label} has no input "${opts.inputName}"; its inputs are ${names(info.inputs)}`);
  } else if (info.inputs.length !== 1) {
    throw new Error(`${label} has ${info.inputs.length} inputs (${names(info.inputs)}): pass inputName`);
  }
  if (!input) throw new Error(`${label} has no inputs`);
  if (input.type !== 'float32') {
    throw new Error(`${label}: input "${input.name}" is ${input.type ?? 'not a tensor'}; the extractor feeds float32`);
  }
  const output = opts.outputName === undefined ? info.outputs[0] : info.outputs.find((v) => v.name === opts.outputName);
  if (!output) throw new Error(`${label} has no output "${opts.outputName}"; its outputs are ${names(info.outputs)}`);

  const modelShape = fixedImageShape(input);
  let imageShape: number[];
  if (Array.isArray(opts.inputShape)) {
    imageShape = [...opts.inputShape];
    const rest = input.shape.slice(1);
    const clash =
      rest.length !== imageShape.length || rest.some((d, i) => typeof d === 'number' && d > 0 && d !== imageShape[i]);
    if (input.shape.length > 0 && clash) {
      throw new Error(
        `inputShape [${imageShape}] does not fit ${label}'s input "${input.name}" of shape [${input.shape}]`,
      );
    }
  } else {
    if (!modelShape) {
      throw new Error(
        `${label}'s input "${input.name}" has shape [${input.shape}] with dynamic image dimensions: pass inputShape as [C, H, W]`,
      );
    }
    const count = modelShape.reduce((a, b) => a * b, 1);
    if (typeof opts.inputShape === 'number' && opts.inputShape !== count) {
      throw new Error(`inputShape says ${opts.inputShape} values per image but ${label} takes [${modelShape}] = ${count}`);
    }
    imageShape = modelShape;
  }
  const batchDim = input.shape[0];
  return {
    inputName: input.name,
    outputName: output.name,
    imageShape,
    fixedBatch: typeof batchDim === 'number' && batchDim > 0 ? batchDim : undefined,
  };
}

function elementCount(shape: readonly number[] | number): number {
  return typeof shape === 'number' ? shape : shape.reduce((a, b) => a * b, 1);
}

/** Loader workers, started by the producer once the image size is known. */
interface LoaderWorkers {
  threads: number;
  onFatal: (err: Error) => void;
  pool?: LoaderPool;
}

interface SettledBatch<T> {
  /** Null when no image of the batch loaded. */
  result: FeatureBatch<T> | null;
  /** Images the batch covered, loaded or not. */
  settledCount: number;
}

/**
 * The producer: pulls items, loads them into batch buffers, and queues one
 * promise per batch (in order) that resolves to its features.
 */
async function produceBatches<T>(
  opts: ExtractOptions<T>,
  pool: InferencePool,
  loaders: LoaderWorkers,
  label: string,
  queue: OrderedQueue<SettledBatch<T>>,
  tickets: Semaphore,
  loadConcurrency: number,
  signal: AbortSignal,
): Promise<void> {
  const reportError =
    opts.onError ??
    ((item: T, err: unknown) =>
      process.emitWarning(`skipped an image that failed to load (${String(item)}): ${errorMessage(err)}`, {
        code: 'TLPIPE_IMAGE_SKIPPED',
      }));
  let iterator: AsyncIterator<T> | Iterator<T> | undefined;
  try {
    // Without an explicit shape the buffers' size comes from the model, and
    // without an explicit batch size from what its session measured: wait for it.
    let layout: Layout | undefined;
    let cost: ModelInfo['cost'];
    const layoutReady = pool.ready.then((info) => {
      cost = info.cost;
      return (layout = resolveLayout(opts, info, label));
    });
    layoutReady.catch(() => {});
    if (opts.inputShape === undefined || opts.batchSize === undefined) await raceAbort(layoutReady, signal);

    const batchSize =
      opts.batchSize ??
      layout?.fixedBatch ??
      (opts.device === 'cuda' ? DEFAULT_CUDA_BATCH_SIZE : cost?.inferenceDominates ? INFERENCE_BOUND_BATCH_SIZE : DEFAULT_BATCH_SIZE);
    opts.onSettings?.({
      batchSize,
      ...(cost ? { spinning: cost.spinning, inferenceDominates: cost.inferenceDominates, machineBusy: cost.machineBusy, loadAverage: cost.loadAverage } : {}),
      ...(cost?.cpuMsPerImage !== undefined ? { inferenceCpuMsPerImage: cost.cpuMsPerImage } : {}),
    });
    const elements = elementCount(opts.inputShape ?? layout!.imageShape);
    const buffers = new BufferPool(batchSize * elements);
    const loadSlots = new Semaphore(loadConcurrency);
    let load = opts.load;
    if (opts.loaderModule) {
      const workers = new LoaderPool({ module: opts.loaderModule, threads: loaders.threads, elements, onFatal: loaders.onFatal });
      loaders.pool = workers;
      load = (item, target, offset) => workers.load(item, target, offset);
    }
    iterator = toIterator(opts.items);

    for (let exhausted = false; !exhausted; ) {
      await tickets.acquire(signal);
      const fill = new BatchFill<T>(buffers.take(), elements);
      while (fill.count < batchSize) {
        await loadSlots.acquire(signal);
        const next = await raceAbort(Promise.resolve(iterator.next()), signal);
        if (next.done) {
          loadSlots.release();
          exhausted = true;
          break;
        }
        fill.start(next.value, load!, signal, (item, err) => {
          loadSlots.release();
          if (err !== undefined && !signal.aborted) reportError(item, err);
        });
      }
      if (fill.count === 0) {
        tickets.release();
        break;
      }
      queue.push(
        finishBatch(fill, pool, layoutReady, batchSize, buffers, signal).then(
          (result): SettledBatch<T> => ({ result, settledCount: fill.count }),
        ),
      );
    }
    queue.end();
    iterator = undefined;
  } catch (err) {
    queue.fail(err);
  } finally {
    // Stopped early: let a generator source run its own cleanup.
    await Promise.resolve(iterator?.return?.()).catch(() => {});
  }
}

/** Waits for a batch's loads, closes its gaps and runs it through the model. */
async function finishBatch<T>(
  fill: BatchFill<T>,
  pool: InferencePool,
  layoutReady: Promise<Layout>,
  batchSize: number,
  buffers: BufferPool,
  signal: AbortSignal,
): Promise<FeatureBatch<T> | null> {
  const rows = await fill.settled();
  if (rows.length === 0) {
    buffers.give(fill.buffer);
    return null;
  }
  const layout = await layoutReady;
  if (layout.fixedBatch !== undefined && layout.fixedBatch !== batchSize) {
    throw new Error(
      `the model's input "${layout.inputName}" has a fixed batch size of ${layout.fixedBatch}: pass batchSize: ${layout.fixedBatch}`,
    );
  }
  if (signal.aborted) throw abortReason(signal);
  const runRows = layout.fixedBatch ?? rows.length;
  const result = await pool.run(fill.buffer.buffer as ArrayBuffer, [runRows, ...layout.imageShape], layout.inputName, layout.outputName);
  buffers.give(new Float32Array(result.buffer));
  const featureWidth = result.shape.slice(1).reduce((a, b) => a * b, 1);
  return {
    items: rows,
    features: result.features.subarray(0, rows.length * featureWidth),
    featureWidth,
  };
}

/** One batch buffer being filled by concurrent loads. */
class BatchFill<T> {
  readonly buffer: Float32Array;
  readonly #elements: number;
  readonly #items: T[] = [];
  readonly #ok: boolean[] = [];
  readonly #loads: Promise<void>[] = [];

  constructor(buffer: Float32Array, elements: number) {
    this.buffer = buffer;
    this.#elements = elements;
  }

  get count(): number {
    return this.#items.length;
  }

  start(item: T, load: ImageLoader<T>, signal: AbortSignal, settled: (item: T, err?: unknown) => void): void {
    const slot = this.#items.length;
    const offset = slot * this.#elements;
    this.#items.push(item);
    this.#ok.push(false);
    const run = async () => {
      const returned = await load(item, this.buffer, offset, signal);
      if (returned !== undefined) {
        if (!(returned instanceof Float32Array) || returned.length !== this.#elements) {
          throw new Error(
            `the loader returned ${describeValue(returned)}; expected a Float32Array of ${this.#elements} values`,
          );
        }
        this.buffer.set(returned, offset);
      }
    };
    this.#loads.push(
      run().then(
        () => {
          this.#ok[slot] = true;
          settled(item);
        },
        (err: unknown) => settled(item, err ?? new Error('load failed')),
      ),
    );
  }

  /** Waits for every load, then moves the loaded rows together at the front; returns their items. */
  async settled(): Promise<T[]> {
    await Promise.all(this.#loads);
    const rows: T[] = [];
    const e = this.#elements;
    this.#items.forEach((item, slot) => {
      if (!this.#ok[slot]) return;
      const row = rows.length;
      if (row !== slot) this.buffer.copyWithin(row * e, slot * e, (slot + 1) * e);
      rows.push(item);
    });
    return rows;
  }
}

function toIterator<T>(items: Iterable<T> | AsyncIterable<T>): AsyncIterator<T> | Iterator<T> {
  if (Symbol.asyncIterator in items) return (items as AsyncIterable<T>)[Symbol.asyncIterator]();
  return (items as Iterable<T>)[Symbol.iterator]();
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeValue(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as ArrayLike<unknown>).length} values`;
  return typeof v;
}
