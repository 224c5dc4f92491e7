import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { buildModel } from '../src/onnx/builder.js';
import {
  type ChosenSettings,
  DECODE_CPU_MS_PER_IMAGE,
  DEFAULT_BATCH_SIZE,
  extractFeatures,
  INFERENCE_BOUND_BATCH_SIZE,
  inferenceDominates,
  likelyInferenceBound,
  machineBusy,
  planThreads,
  readModelInfo,
  type ExtractOptions,
  type FeatureBatch,
} from '../src/features/index.js';
import { CudaUnavailableError } from '../src/onnx/runtime.js';
import { fixture, needsFixtures } from './support/fixtures.js';
import { removeDir, tempDir } from './support/tmp.js';

// A tiny backbone whose output is exactly computable: the mean of each channel.
const C = 3;
const H = 4;
const W = 4;
const PLANE = H * W;

function meanPoolModel(batch: number | string = 'batch'): Uint8Array {
  return buildModel({
    opset: 13,
    irVersion: 7,
    nodes: [
      { op: 'GlobalAveragePool', inputs: ['images'], outputs: ['pooled'] },
      { op: 'Flatten', inputs: ['pooled'], outputs: ['features'], attrs: { axis: { kind: 'int', value: 1 } } },
    ],
    inputs: [{ name: 'images', type: 'float32', dims: [batch, C, H, W] }],
    outputs: [{ name: 'features', type: 'float32', dims: [batch, C] }],
  });
}

/** Image `i`: channel c holds i*100 + c*10 plus a zero-mean pattern, so its features are exact. */
function fillImage(i: number, target: Float32Array, offset: number): void {
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < PLANE; p++) target[offset + c * PLANE + p] = i * 100 + c * 10 + (p - (PLANE - 1) / 2);
  }
}

const expectedFeatures = (i: number) => Array.from({ length: C }, (_, c) => i * 100 + c * 10);

/** Loads in a scrambled order, so results only come out right if the extractor reorders nothing. */
async function scrambledLoad(i: number, target: Float32Array, offset: number): Promise<void> {
  await sleep((i * 7) % 5);
  fillImage(i, target, offset);
}

function rows(batch: FeatureBatch<number>): number[][] {
  return batch.items.map((_, r) => Array.from(batch.features.subarray(r * batch.featureWidth, (r + 1) * batch.featureWidth)));
}

async function collect<T>(it: AsyncIterable<FeatureBatch<T>>): Promise<FeatureBatch<T>[]> {
  const out: FeatureBatch<T>[] = [];
  for await (const b of it) out.push(b);
  return out;
}

function threadCount(): number {
  const m = /^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : -1;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('extractFeatures', () => {
  let dir: string;
  let modelPath: string;
  const base = (): Pick<ExtractOptions<number>, 'modelPath' | 'intraOpThreads' | 'loadConcurrency'> => ({
    modelPath,
    intraOpThreads: 1,
    loadConcurrency: 3,
  });

  before(async () => {
    dir = await tempDir();
    modelPath = path.join(dir, 'mean-pool.onnx');
    await writeFile(modelPath, meanPoolModel());
  });
  after(() => removeDir(dir));

  test('yields every image in input order, with exact features, across uneven batch boundaries', async () => {
    const progress: Array<[number, number | undefined]> = [];
    const batches = await collect(
      extractFeatures({ ...base(), items: range(11), load: scrambledLoad, batchSize: 4, onProgress: (d, t) => progress.push([d, t]) }),
    );
    assert.deepEqual(
      batches.map((b) => b.items),
      [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10],
      ],
    );
    assert.ok(batches.every((b) => b.featureWidth === C && b.features.length === b.items.length * C));
    assert.deepEqual(batches.flatMap(rows), range(11).map(expectedFeatures));
    assert.deepEqual(progress, [
      [4, 11],
      [8, 11],
      [11, 11],
    ]);
  });

  test('takes the input shape from the model, async iterable sources, and loaders that return a tensor', async () => {
    async function* source() {
      for (let i = 0; i < 5; i++) yield i;
    }
    const batches = await collect(
      extractFeatures({
        modelBytes: meanPoolModel(),
        items: source(),
        batchSize: 2,
        load: async (i) => {
          const t = new Float32Array(C * PLANE);
          fillImage(i, t, 0);
          return t;
        },
      }),
    );
    assert.deepEqual(batches.flatMap(rows), range(5).map(expectedFeatures));
  });

  test('reports a failing image and skips it without stopping the stream', async () => {
    const failures: Array<[number, string]> = [];
    const failing = new Set([1, 4, 5, 6, 7, 9]); // 4..7 is a whole batch
    const batches = await collect(
      extractFeatures({
        ...base(),
        items: range(10),
        batchSize: 4,
        load: async (i, target, offset) => {
          await sleep(i % 3);
          if (failing.has(i)) throw new Error(`corrupt image ${i}`);
          fillImage(i, target, offset);
        },
        onError: (item, err) => failures.push([item, (err as Error).message]),
      }),
    );
    assert.deepEqual(
      batches.map((b) => b.items),
      [[0, 2, 3], [8]],
    );
    assert.deepEqual(batches.flatMap(rows), [0, 2, 3, 8].map(expectedFeatures));
    assert.deepEqual(
      failures.sort((a, b) => a[0] - b[0]),
      [...failing].map((i) => [i, `corrupt image ${i}`]),
    );
  });

  test('a loader returning a tensor of the wrong size is reported like a failed load', async () => {
    const failures: number[] = [];
    const batches = await collect(
      extractFeatures({
        ...base(),
        items: range(3),
        load: async (i) => {
          const t = new Float32Array(i === 1 ? 5 : C * PLANE);
          if (i !== 1) fillImage(i, t, 0);
          return t;
        },
        onError: (i) => failures.push(i),
      }),
    );
    assert.deepEqual(batches.flatMap((b) => b.items), [0, 2]);
    assert.deepEqual(failures, [1]);
  });

  test('a source that throws ends the stream with its error, after the batches before it', async () => {
    async function* broken() {
      yield* [0, 1, 2];
      throw new Error('listing failed');
    }
    const seen: number[] = [];
    await assert.rejects(async () => {
      for await (const b of extractFeatures({ ...base(), items: broken(), batchSize: 2, load: scrambledLoad })) seen.push(...b.items);
    }, /listing failed/);
    assert.deepEqual(seen, [0, 1]);
  });

  test('loads lazily: never more than the in-flight bound ahead of consumption', async () => {
    const batchSize = 4;
    const batchesInFlight = 3;
    let pulled = 0;
    let loadsStarted = 0;
    let consumed = 0;
    let maxAhead = 0;
    let sourceClosed = false;
    async function* endless() {
      try {
        for (let i = 0; ; i++) {
          pulled++;
          yield i;
        }
      } finally {
        sourceClosed = true;
      }
    }
    for await (const batch of extractFeatures({
      ...base(),
      items: endless(),
      batchSize,
      batchesInFlight,
      load: async (i, target, offset) => {
        loadsStarted++;
        maxAhead = Math.max(maxAhead, loadsStarted - consumed);
        fillImage(i, target, offset);
      },
    })) {
      assert.deepEqual(rows(batch), batch.items.map(expectedFeatures));
      await sleep(30); // a slow consumer
      consumed += batch.items.length;
      if (consumed >= 40) break;
    }
    assert.ok(maxAhead <= batchSize * batchesInFlight, `loader ran ${maxAhead} images ahead`);
    assert.ok(pulled <= consumed + batchSize * batchesInFlight, `pulled ${pulled} for ${consumed} consumed`);
    assert.ok(sourceClosed, 'the source generator was closed when the consumer stopped');
  });

  test('abort stops promptly, mid-load, and shuts the inference worker down', async () => {
    await collect(extractFeatures({ ...base(), items: range(4), load: async (i, t, o) => fillImage(i, t, o) }));
    const threadsBefore = threadCount();

    const controller = new AbortController();
    let loads = 0;
    const started = performance.now();
    const run = collect(
      extractFeatures({
        ...base(),
        items: range(1000),
        batchSize: 2,
        signal: controller.signal,
        load: async (i, target, offset, signal) => {
          if (++loads === 7) setImmediate(() => controller.abort(new Error('user cancelled')));
          // A load that would take a minute unless its signal stops it.
          await sleep(i < 6 ? 0 : 60_000, undefined, { signal });
          fillImage(i, target, offset);
        },
      }),
    );
    await assert.rejects(run, /user cancelled/);
    assert.ok(performance.now() - started < 5_000, 'abort took too long');
    assert.ok(loads < 20, `kept loading after abort (${loads} loads)`);
    // Worker and onnxruntime threads are gone once the iterator has thrown.
    assert.equal(threadCount(), threadsBefore);
  });

  test('an already aborted signal fails at once', async () => {
    const controller = new AbortController();
    controller.abort(new Error('too late'));
    await assert.rejects(
      collect(extractFeatures({ ...base(), items: range(3), load: async () => {}, signal: controller.signal })),
      /too late/,
    );
  });

  test('breaking out early shuts the worker down (no hanging process)', async () => {
    await collect(extractFeatures({ ...base(), items: range(2), load: async (i, t, o) => fillImage(i, t, o) }));
    const threadsBefore = threadCount();
    for await (const batch of extractFeatures({ ...base(), items: range(100), batchSize: 2, load: scrambledLoad })) {
      assert.deepEqual(batch.items, [0, 1]);
      break;
    }
    assert.equal(threadCount(), threadsBefore);
  });

  test("follows a model's fixed batch size, padding the last batch", async () => {
    const fixed = { modelBytes: meanPoolModel(2), intraOpThreads: 1 };
    const batches = await collect(extractFeatures({ ...fixed, items: range(5), load: scrambledLoad }));
    assert.deepEqual(
      batches.map((b) => b.items),
      [[0, 1], [2, 3], [4]],
    );
    assert.deepEqual(batches.flatMap(rows), range(5).map(expectedFeatures));
    // An explicit input shape without a batch size: the batch size still waits for the model, which fixes it.
    const shaped = await collect(extractFeatures({ ...fixed, items: range(5), load: scrambledLoad, inputShape: [C, H, W] }));
    assert.deepEqual(shaped.flatMap(rows), range(5).map(expectedFeatures));
    // With both, decoding starts before the model is read, at the batch size given.
    await assert.rejects(
      collect(extractFeatures({ ...fixed, items: range(5), load: scrambledLoad, inputShape: [C, H, W], batchSize: 4 })),
      /fixed batch size of 2: pass batchSize: 2/,
    );
  });

  test('explains a wrong input name, a shape the model rejects and a missing model', async () => {
    await assert.rejects(
      collect(extractFeatures({ ...base(), items: range(2), load: async () => {}, inputName: 'pixels' })),
      /has no input "pixels"; its inputs are "images"/,
    );
    await assert.rejects(
      collect(extractFeatures({ ...base(), items: range(2), load: async () => {}, inputShape: [3, 5, 5] })),
      /inputShape \[3,5,5\] does not fit/,
    );
    await assert.rejects(
      collect(extractFeatures({ ...base(), modelPath: path.join(dir, 'absent.onnx'), items: range(2), load: async () => {} })),
      /Could not load the model ".*absent\.onnx"/,
    );
    await assert.rejects(
      collect(extractFeatures({ ...base(), items: range(2), load: async () => {}, batchSize: 0 })),
      /batchSize must be a positive integer/,
    );
  });

  test("device 'cuda' without the CUDA provider says how to install it", async () => {
    const err = await collect(
      extractFeatures({ ...base(), device: 'cuda', items: range(2), load: async (i, t, o) => fillImage(i, t, o) }),
    ).then(
      () => assert.fail('expected the CUDA session to fail on a machine without the CUDA provider'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CudaUnavailableError, String(err));
    assert.match(err.message, /CUDA execution provider is not installed/);
    assert.match(err.message, /ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false/);
  });
});

describe('extractFeatures with loader workers (loaderModule)', () => {
  let dir: string;
  let modelPath: string;
  let loaderUrl: string;

  before(async () => {
    dir = await tempDir({
      // The same images as fillImage, loaded in worker threads; options come from the test.
      'mean-loader.mjs': `
        import { isMainThread } from 'node:worker_threads';
        import { setTimeout as sleep } from 'node:timers/promises';
        export function createLoader({ channels, plane, failOn, crashOn }) {
          return async (i, target, offset) => {
            if (isMainThread) throw new Error('ran on the main thread');
            if (i === crashOn) setImmediate(() => { throw new Error('loader bug'); });
            await sleep((i * 7) % 5);
            if (failOn.includes(i)) throw Object.assign(new Error('corrupt image ' + i), { code: 'CORRUPT' });
            for (let c = 0; c < channels; c++)
              for (let p = 0; p < plane; p++) target[offset + c * plane + p] = i * 100 + c * 10 + (p - (plane - 1) / 2);
          };
        }
        export const notAFactory = 42;
      `,
    });
    modelPath = path.join(dir, 'mean-pool.onnx');
    await writeFile(modelPath, meanPoolModel());
    loaderUrl = path.join(dir, 'mean-loader.mjs');
  });
  after(() => removeDir(dir));

  const loaderOptions = (extra: object = {}) => ({ channels: C, plane: PLANE, failOn: [] as number[], crashOn: -1, ...extra });

  test('loads off the main thread, in order, skipping failed images with their error', async () => {
    const failures: Array<[number, string, unknown]> = [];
    const batches = await collect(
      extractFeatures({
        modelPath,
        items: range(13),
        batchSize: 4,
        intraOpThreads: 1,
        loaderThreads: 2,
        loaderModule: { url: loaderUrl, options: loaderOptions({ failOn: [5, 12] }) },
        onError: (i, err) => failures.push([i, (err as Error).message, (err as { code?: unknown }).code]),
      }),
    );
    const kept = range(13).filter((i) => i !== 5 && i !== 12);
    assert.deepEqual(batches.flatMap((b) => b.items), kept);
    assert.deepEqual(batches.flatMap(rows), kept.map(expectedFeatures));
    assert.deepEqual(failures.sort((a, b) => a[0] - b[0]), [
      [5, 'corrupt image 5', 'CORRUPT'],
      [12, 'corrupt image 12', 'CORRUPT'],
    ]);
  });

  test('a loader module without the factory fails the run with a clear message', async () => {
    await assert.rejects(
      collect(
        extractFeatures({ modelPath, items: range(3), loaderModule: { url: loaderUrl, exportName: 'notAFactory' } }),
      ),
      /Could not start the image loader .*mean-loader\.mjs.*no exported function "notAFactory"/,
    );
  });

  test('a crashing loader worker ends the run and every thread is shut down', async () => {
    await collect(extractFeatures({ modelPath, items: range(2), intraOpThreads: 1, load: async (i, t, o) => fillImage(i, t, o) }));
    const threadsBefore = threadCount();
    await assert.rejects(
      collect(
        extractFeatures({
          modelPath,
          items: range(50),
          batchSize: 2,
          intraOpThreads: 1,
          loaderModule: { url: loaderUrl, options: loaderOptions({ crashOn: 9 }) },
        }),
      ),
      /image loader worker .* crashed: loader bug/,
    );
    assert.equal(threadCount(), threadsBefore);
  });

  test('load and loaderModule are exclusive', async () => {
    await assert.rejects(
      collect(extractFeatures({ modelPath, items: range(1), load: async () => {}, loaderModule: { url: loaderUrl } })),
      /exactly one of load or loaderModule/,
    );
  });
});

test('readModelInfo reports input and output names, types and shapes', async () => {
  const info = await readModelInfo(meanPoolModel());
  assert.deepEqual(info, {
    inputs: [{ name: 'images', type: 'float32', shape: ['batch', C, H, W] }],
    outputs: [{ name: 'features', type: 'float32', shape: ['batch', C] }],
  });
});

test('planThreads scales with the cores and keeps overrides', () => {
  const two = planThreads({}, 2);
  const sixteen = planThreads({}, 16);
  assert.ok(sixteen.intraOpThreads > two.intraOpThreads);
  assert.ok(sixteen.loadConcurrency > two.loadConcurrency);
  assert.ok(sixteen.uvThreadpoolSize > sixteen.loadConcurrency);
  assert.equal(planThreads({ intraOpThreads: 3, loadConcurrency: 5 }, 2).intraOpThreads, 3);
  assert.equal(planThreads({ loadConcurrency: 5 }, 2).loadConcurrency, 5);
});

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Plain ImageNet preprocessing, written independently of the project's own. */
async function simpleImageNetTensor(file: string): Promise<Float32Array> {
  const { data } = await sharp(file)
    .removeAlpha()
    .resize(224, 224, { fit: 'cover' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out = new Float32Array(3 * 224 * 224);
  for (let p = 0; p < 224 * 224; p++) {
    for (let c = 0; c < 3; c++) out[c * 224 * 224 + p] = (data[p * 3 + c]! / 255 - MEAN[c]!) / STD[c]!;
  }
  return out;
}

test('real MobileNetV2-int8 on real photos matches a direct InferenceSession.run', { skip: needsFixtures }, async () => {
  const modelPath = fixture('models', 'mobilenetv2-12-int8.onnx');
  const files = ['chelsea.png', 'coffee.png', 'dog.jpg', 'truncated.jpg', 'chelsea.png'].map((f) => fixture('images', f));
  const skipped: string[] = [];
  const batches = await collect(
    extractFeatures({
      modelPath,
      items: files,
      batchSize: 2,
      load: simpleImageNetTensor,
      onError: (f) => skipped.push(path.basename(f)),
    }),
  );
  assert.deepEqual(skipped, ['truncated.jpg']);
  const extracted = batches.flatMap((b) => b.items.map((_, r) => b.features.subarray(r * b.featureWidth, (r + 1) * b.featureWidth)));
  assert.equal(extracted.length, 4);
  assert.ok(batches.every((b) => b.featureWidth === 1000));

  const good = files.filter((f) => !f.endsWith('truncated.jpg'));
  const tensors = await Promise.all(good.map(simpleImageNetTensor));
  const batch = new Float32Array(tensors.length * tensors[0]!.length);
  tensors.forEach((t, i) => batch.set(t, i * t.length));
  const session = await ort.InferenceSession.create(modelPath);
  try {
    const out = await session.run({ input: new ort.Tensor('float32', batch, [tensors.length, 3, 224, 224]) });
    const direct = out.output!.data as Float32Array;
    extracted.forEach((row, i) => {
      const expected = direct.subarray(i * 1000, (i + 1) * 1000);
      const worst = row.reduce((m, v, k) => Math.max(m, Math.abs(v - expected[k]!)), 0);
      assert.ok(worst < 1e-4, `image ${i}: largest difference ${worst}`);
    });
  } finally {
    await session.release();
  }
  const top1 = (row: Float32Array) => row.indexOf(Math.max(...row));
  assert.equal(top1(extracted[0]!), 285); // Egyptian cat
  assert.equal(top1(extracted[1]!), 967); // espresso
});

// Spinning and batch size chosen from the model's measured cost (src/features/threads.ts).
describe('extractFeatures: settings from measured costs', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => removeDir(dir));

  /** Convolutions of `channels` channels over a 3×size×size image: its cost per image grows as channels² × size². */
  function convModel(channels: number, size: number, layers: number): Uint8Array {
    const initializers = [];
    const nodes = [];
    let current = 'images';
    let inChannels = 3;
    for (let l = 0; l < layers; l++) {
      const w = new Float32Array(channels * inChannels * 9).map((_, i) => Math.sin(i) * 0.05);
      initializers.push({ name: `w${l}`, type: 'float32' as const, dims: [channels, inChannels, 3, 3], data: w });
      nodes.push({ op: 'Conv', inputs: [current, `w${l}`], outputs: [`c${l}`], attrs: { pads: { kind: 'ints' as const, value: [1, 1, 1, 1] } } });
      nodes.push({ op: 'Relu', inputs: [`c${l}`], outputs: [`r${l}`] });
      current = `r${l}`;
      inChannels = channels;
    }
    nodes.push({ op: 'GlobalAveragePool', inputs: [current], outputs: ['pooled'] });
    nodes.push({ op: 'Flatten', inputs: ['pooled'], outputs: ['features'], attrs: { axis: { kind: 'int' as const, value: 1 } } });
    return buildModel({
      opset: 13,
      irVersion: 7,
      nodes,
      initializers,
      inputs: [{ name: 'images', type: 'float32', dims: ['batch', 3, size, size] }],
      outputs: [{ name: 'features', type: 'float32', dims: ['batch', channels] }],
    });
  }

  async function chosenFor(model: Uint8Array, name: string, loadAverage = 0) {
    const file = path.join(dir, name);
    await writeFile(file, model);
    let chosen: ChosenSettings | undefined;
    const elements = 3 * 96 * 96;
    const batches = await collect(
      extractFeatures({
        modelPath: file,
        items: range(3),
        load: async (i, target, offset) => void target.fill(i / 10, offset, offset + elements),
        onSettings: (s) => (chosen = s),
        loadAverage,
      }),
    );
    assert.equal(batches.flatMap((b) => b.items).length, 3);
    return chosen!;
  }

  test('the rule: inference dominates at 5 times the decoding cost', () => {
    assert.equal(inferenceDominates(80, 4.4), true);
    assert.equal(inferenceDominates(22, 4.4), true);
    assert.equal(inferenceDominates(21.9, 4.4), false);
    assert.equal(inferenceDominates(3.6), false);
    assert.equal(inferenceDominates(undefined), false);
    assert.equal(DECODE_CPU_MS_PER_IMAGE > 0, true);
    // The guess before timing, from the file's size: the timed run has the last word.
    assert.equal(likelyInferenceBound(94e6), true);
    assert.equal(likelyInferenceBound(3.5e6), false);
    assert.equal(likelyInferenceBound(undefined), false);
    // Busy: more than 2 runnable threads per core.
    assert.equal(machineBusy(4, 2), false);
    assert.equal(machineBusy(4.1, 2), true);
  });

  test('a cheap model keeps spinning off and the small batch; a costly one gets spinning and the larger batch', async () => {
    const cheap = await chosenFor(convModel(4, 96, 1), 'cheap.onnx');
    assert.equal(cheap.spinning, false);
    assert.equal(cheap.batchSize, DEFAULT_BATCH_SIZE);
    assert.ok(cheap.inferenceCpuMsPerImage !== undefined && cheap.inferenceCpuMsPerImage < 5 * DECODE_CPU_MS_PER_IMAGE);
    // About 3.4 G multiply-adds per image: well over 22 ms of CPU on any core today.
    const costly = await chosenFor(convModel(128, 96, 4), 'costly.onnx');
    assert.equal(costly.spinning, true, `timed at ${costly.inferenceCpuMsPerImage} ms per image`);
    assert.equal(costly.batchSize, INFERENCE_BOUND_BATCH_SIZE);
    assert.ok(costly.inferenceCpuMsPerImage! >= 5 * DECODE_CPU_MS_PER_IMAGE);
    // On a busy machine the costly model keeps its batch but not spinning.
    const busy = await chosenFor(convModel(128, 96, 4), 'costly-busy.onnx', 40);
    assert.deepEqual([busy.inferenceDominates, busy.machineBusy, busy.spinning, busy.batchSize], [true, true, false, INFERENCE_BOUND_BATCH_SIZE]);
  });

  test('a setting the caller gives is kept: no timed run', async () => {
    const file = path.join(dir, 'given.onnx');
    await writeFile(file, convModel(4, 96, 1));
    let chosen: ChosenSettings | undefined;
    await collect(
      extractFeatures({ modelPath: file, items: range(2), load: async () => {}, spinning: true, batchSize: 3, onSettings: (s) => (chosen = s) }),
    );
    assert.deepEqual(chosen, { batchSize: 3 });
  });
});
