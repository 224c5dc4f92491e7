// `features.extract`: the frozen backbone's forward pass over every image,
// done once. Results are committed in chunks keyed by (feature model, transform,
// image content), shared across fingerprints: a killed run resumes from the
// last chunk, and adding images computes only the new ones.
import { Type } from '@sinclair/typebox';
import { datasetManifestKind, readDatasetManifest } from '../artifacts/dataset-manifest.js';
import { featureModelKind, featureModelPath, featureModelValue } from '../artifacts/feature-model.js';
import { type FeatureRows, featuresKind, writeFeatures } from '../artifacts/features.js';
import { readTransform, transformKind } from '../artifacts/transform.js';
import { float32Rows, type RowCodec } from '../features/chunks.js';
import { DEFAULT_BATCH_SIZE, DEFAULT_CUDA_BATCH_SIZE, INFERENCE_BOUND_BATCH_SIZE } from '../features/batch-size.js';
import { DECODE_CPU_MS_PER_IMAGE } from '../features/threads.js';
import type { Cluster, FeatureSpreadReport } from '../cluster/coordinator.js';
import { ImageLoadError } from '../images/image-problems.js';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { createRng, deriveSeed } from '../images/random.js';
import type { TransformSpec } from '../images/transform-spec.js';
import { canonicalJson, sha256 } from '../runner/fingerprint.js';
import { StepFailure } from '../runner/errors.js';
import { type Artifact, defineStep, type Json, type StepContext } from '../runner/step.js';
import type { DatasetImage } from '../images/dataset-types.js';
import { resolveDevice } from '../onnx/runtime.js';
import { imageRuntimeKey } from '../runner/runtime-key.js';

const paramsSchema = defineParams({
  augmentedCopies: Type.Integer({
    minimum: 0,
    maximum: 64,
    default: 0,
    description:
      "Extra feature vectors per training image, each from a view augmented as the transform stage's `augment` says (the head trains on all of them; evaluation uses the plain view).",
  }),
  augmentSeed: Type.Integer({ minimum: 0, maximum: 4294967295, default: 0, description: 'Seed of the augmented views.' }),
  // No schema default: the batch size follows the model and the device (see the description).
  batchSize: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 4096,
      description: `Images per inference call (default: the model's fixed batch size when it has one, else ${DEFAULT_CUDA_BATCH_SIZE} with CUDA and on the CPU ${DEFAULT_BATCH_SIZE}, or ${INFERENCE_BOUND_BATCH_SIZE} when inference costs far more than decoding).`,
    }),
  ),
  chunkSize: Type.Integer({ minimum: 1, maximum: 1000000, default: 256, description: 'Images per committed chunk: the most work an interruption can lose.' }),
  device: StringEnum(['auto', 'cpu', 'cuda'], { default: 'auto', description: "'cuda' needs onnxruntime-node's CUDA provider (see README); 'auto' falls back to CPU." }),
  intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'onnxruntime threads (default: all cores).' })),
  loadConcurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Images decoded at once (default: cores + 1).' })),
});
export type FeaturesParams = Static<typeof paramsSchema>;
export const featuresParamsSchema = paramsSchema;

const VERSION = 1;

export const featuresStep = defineStep<FeaturesParams>({
  type: 'features.extract',
  version: VERSION,
  description: "Runs the frozen backbone once over every image (train, validation, test) and caches the feature vectors; resumable, and only new images are computed.",
  inputs: {
    dataset: { description: 'the images.dataset stage', kind: datasetManifestKind.name },
    transform: { description: 'the images.transform stage', kind: transformKind.name },
    model: { description: 'the backbone.freeze (or backbone.quantize) stage', kind: featureModelKind.name },
  },
  produces: featuresKind.name,
  paramsSchema,

  async dependencies(params) {
    return { runtime: await imageRuntimeKey(params.device) };
  },

  async run(ctx, params, inputs) {
    const modelPath = featureModelPath(inputs.model!);
    const { featureWidth } = featureModelValue(inputs.model!);
    const rows = await computeRows(ctx, params, inputs.dataset!, inputs.transform!, { path: modelPath, width: featureWidth, fingerprint: inputs.model!.fingerprint, spread: true });
    await writeFeatures(ctx.outDir, rows.matrix, rows.table);
    return { value: rows.value, metrics: rows.metrics, chunkScopes: [rows.scope] };
  },
});

/** The model whose outputs are computed per image, and what keys its results. */
export interface RowModel {
  path: string;
  /** Values per image. */
  width: number;
  /** The model artifact's fingerprint: chunks are shared by everything with the same model and transform. */
  fingerprint: string;
  /** Whether the work may go to the queue's workers (`run --queue`). */
  spread: boolean;
  /** How the chunk log stores rows (default float32; 8-bit codes for a quantized cut). */
  codec?: RowCodec;
}

export interface ComputedRows {
  matrix: Float32Array;
  table: FeatureRows;
  value: Json;
  metrics: { [name: string]: Json };
  scope: string;
}

/**
 * One output row per usable image (manifest order), then the augmented
 * training views: committed in chunks keyed by (model, transform, image
 * content), so a killed run resumes from the last chunk and adding images
 * computes only the new ones. Used by features.extract and activations.extract.
 */
export async function computeRows(ctx: StepContext, params: FeaturesParams, dataset: Artifact, transform: Artifact, model: RowModel): Promise<ComputedRows> {
    const manifest = await readDatasetManifest(dataset);
    const spec = await readTransform(transform);
    const modelPath = model.path;
    const featureWidth = model.width;
    const device = await resolveDevice(params.device, (m) => ctx.log(m));
    // The scope names what a feature vector depends on: not the dataset, so
    // that vectors survive adding or removing images.
    // Augmentation settings only matter to augmented views, which name them in their keys.
    const { augment, ...plainTransform } = spec;
    const codec = model.codec ?? float32Rows;
    // float32 logs keep their scope of before; another row format gets a scope of its own.
    const scope = sha256(canonicalJson({ step: VERSION, model: model.fingerprint, transform: plainTransform, ...(codec === float32Rows ? {} : { rows: codec.id }) }));
    const augmentId = sha256(canonicalJson({ augment, seed: params.augmentSeed }));
    const chunks = ctx.chunks(scope);
    const known = new Map<string, Float32Array>();
    for (const chunk of await chunks.readAll()) {
      const decoded = codec.decode(chunk, featureWidth);
      if (decoded) for (const [hash, row] of decoded) known.set(hash, row);
    }

    if (params.augmentedCopies > 0 && !spec.augment) {
      throw new StepFailure('augmentedCopies needs augmentation: give the transform stage `augment: {horizontalFlip: 0.5}` (and/or randomResizedCrop)');
    }
    // Each work item is one view of one image; identical files (same hash) are computed once.
    const views = manifest.images.flatMap((image, imageIndex): View[] => [
      { image, imageIndex, copy: 0, key: image.hash },
      ...(image.split === 'train'
        ? Array.from({ length: params.augmentedCopies }, (_, c) => ({ image, imageIndex, copy: c + 1, key: augmentedKey(image.hash, c + 1, augmentId) }))
        : []),
    ]);
    const todo: View[] = [];
    const queued = new Set<string>();
    for (const view of views) {
      if (known.has(view.key) || queued.has(view.key)) continue;
      queued.add(view.key);
      todo.push(view);
    }
    const failed: { path: string; reason: string }[] = [];
    if (known.size) ctx.log(`${known.size} feature vectors from earlier work; ${todo.length} images to compute`);
    const job: ComputeJob = { todo, augmentSeed: params.augmentSeed, modelPath, spec, device, params, featureWidth, known, failed, codec, append: (b) => chunks.append(b) };
    let spread: FeatureSpreadReport | undefined;
    if (model.spread && ctx.cluster?.worthSpreading(todo.length, params.chunkSize)) spread = await computeSpread(ctx, ctx.cluster, job, views);
    else await computeMissing(ctx, job);
    // One order whoever computed what: the images' own.
    const order = new Map(todo.map((v, i) => [v.image.path, i]));
    failed.sort((a, b) => (order.get(a.path) ?? 0) - (order.get(b.path) ?? 0));

    // The artifact: one row per usable image in manifest order, then the augmented views.
    const usable = views.filter((v) => known.has(v.key));
    const plain = usable.filter((v) => v.copy === 0);
    const augmented = usable.filter((v) => v.copy > 0);
    const ordered = [...plain, ...augmented];
    const matrix = new Float32Array(ordered.length * featureWidth);
    ordered.forEach((v, r) => matrix.set(known.get(v.key)!, r * featureWidth));
    const rows = plain.map((v) => v.imageIndex);
    const table: FeatureRows = { width: featureWidth, rows, augmentedRows: augmented.map((v) => v.imageIndex), failed };
    if (failed.length) {
      ctx.warn(`${failed.length} image(s) could not be decoded and were skipped:`);
      for (const f of failed.slice(0, 20)) ctx.warn(`  ${f.path}: ${f.reason}`);
    }
    return {
      matrix,
      table,
      scope,
      value: { images: rows.length, augmented: augmented.length, featureWidth, failed: failed as unknown as Json, computed: todo.length - failed.length, device },
      metrics: {
        images: rows.length,
        computed: todo.length - failed.length,
        failed: failed.length,
        ...(spread ? { chunks: spread.chunks, 'chunks from remote': spread.fromRemote, 'chunks computed here': spread.computedHere, 'chunks computed elsewhere': spread.computedElsewhere } : {}),
      },
    };
}

/** One view of one image: the plain one (copy 0) or an augmented copy. */
interface View {
  image: DatasetImage;
  imageIndex: number;
  copy: number;
  /** The chunk key of its feature vector: the image hash, or a hash naming the augmented copy. */
  key: string;
}

const augmentedKey = (hash: string, copy: number, augmentId: string) => sha256(`${hash}:augmented:${copy}:${augmentId}`);

/** Augmented views are reproducible: each draws from a generator seeded by image, copy and seed. */
function viewRng(view: View, seed: number) {
  return createRng(deriveSeed(seed, view.copy, parseInt(view.image.hash.slice(0, 8), 16)));
}

interface ComputeJob {
  todo: View[];
  augmentSeed: number;
  modelPath: string;
  spec: TransformSpec;
  device: 'cpu' | 'cuda';
  params: FeaturesParams;
  featureWidth: number;
  known: Map<string, Float32Array>;
  failed: { path: string; reason: string }[];
  codec: RowCodec;
  append: (chunk: Uint8Array) => Promise<void>;
}

async function computeMissing(ctx: StepContext, job: ComputeJob): Promise<void> {
  const { todo, featureWidth, known, failed } = job;
  if (!todo.length) return;
  // Loaded only when there is work: onnxruntime and sharp.
  const [{ extractFeatures }, { loadImageTensorInto }] = await Promise.all([import('../features/extract.js'), import('../images/preprocess.js')]);
  let pending: [string, Float32Array][] = [];
  const commit = async () => {
    if (!pending.length) return;
    await job.append(job.codec.encode(pending, featureWidth));
    pending = [];
  };
  ctx.progress(0, todo.length, 'images');
  try {
    for await (const batch of extractFeatures<View>({
      modelPath: job.modelPath,
      items: todo,
      load: (view, target, offset) =>
        loadImageTensorInto(ctx.inputPath(view.image.path), job.spec, target, offset, view.copy ? { rng: viewRng(view, job.augmentSeed) } : {}),
      batchSize: job.params.batchSize,
      intraOpThreads: job.params.intraOpThreads,
      loadConcurrency: job.params.loadConcurrency,
      device: job.device,
      signal: ctx.signal,
      onProgress: (n) => ctx.progress(n, todo.length, 'images'),
      onSettings: (chosen) => {
        const cost = chosen.inferenceCpuMsPerImage;
        if (chosen.spinning === undefined) return;
        const busy = chosen.machineBusy ? ` but the machine is busy (load average ${chosen.loadAverage?.toFixed(1)})` : '';
        ctx.log(
          `inference ${cost === undefined ? 'not timed' : `${cost.toFixed(1)} ms of CPU per image`} against about ${DECODE_CPU_MS_PER_IMAGE} for decoding: ` +
            `${chosen.inferenceDominates ? `inference dominates${busy}` : 'decoding competes'}, spinning ${chosen.spinning ? 'on' : 'off'}, batch ${chosen.batchSize}`,
        );
      },
      onError: (view, error) => failed.push({ path: view.image.path, reason: (error as Error).message }),
    })) {
      if (batch.featureWidth !== featureWidth) {
        throw new StepFailure(`the feature model gives ${batch.featureWidth} values per image, but the freeze stage said ${featureWidth}`);
      }
      batch.items.forEach((view, i) => {
        const row = batch.features.slice(i * featureWidth, (i + 1) * featureWidth);
        known.set(view.key, row);
        pending.push([view.key, row]);
      });
      if (pending.length >= job.params.chunkSize) await commit();
    }
    await commit();
  } catch (e) {
    // Keep what was computed before the interruption or error.
    await commit().catch(() => undefined);
    throw e;
  }
}

/**
 * The same computation spread over the queue's workers (`run --queue`): each
 * verified chunk is committed to this stage's chunk log as it arrives, so
 * the artifact is assembled exactly as a one-machine run assembles it.
 */
async function computeSpread(ctx: StepContext, cluster: Cluster, job: ComputeJob, views: View[]): Promise<FeatureSpreadReport> {
  const byKey = new Map<string, View>();
  for (const v of views) if (!byKey.has(v.key)) byKey.set(v.key, v);
  return cluster.computeFeatures({
    modelPath: job.modelPath,
    spec: job.spec,
    augmentSeed: job.augmentSeed,
    batchSize: job.params.batchSize,
    chunkSize: job.params.chunkSize,
    featureWidth: job.featureWidth,
    device: job.device,
    intraOpThreads: job.params.intraOpThreads,
    loadConcurrency: job.params.loadConcurrency,
    projectDir: ctx.projectDir,
    // Absolute, through the same mapping a one-machine run reads with: jobs name them relative to a data root.
    views: [...byKey.values()].map((v) => ({ key: v.key, hash: v.image.hash, file: ctx.inputPath(v.image.path), copy: v.copy })),
    known: (key) => job.known.has(key),
    accept: async (rows, failed) => {
      const entries = [...rows].filter(([key]) => byKey.has(key) && !job.known.has(key));
      if (entries.length) await job.append(job.codec.encode(entries, job.featureWidth));
      for (const [key, row] of entries) job.known.set(key, row);
      for (const f of failed) {
        const path = byKey.get(f.key)!.image.path;
        job.failed.push({ path, reason: f.kind ? new ImageLoadError(f.kind as never, f.reason, path).message : f.reason });
      }
    },
    log: (m) => ctx.log(m),
    warn: (m) => ctx.warn(m),
    progress: (done, total) => ctx.progress(done, total, 'images'),
    signal: ctx.signal,
  });
}
