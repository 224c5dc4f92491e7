// Computes one features chunk job: reads each image under the data root,
// refuses bytes that differ from the manifest's hash, runs the backbone, and
// returns the result bytes (feature-job.ts). The same code serves remote
// workers and the run's own share of the work.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { extractFeatures } from '../features/extract.js';
import { loadImageTensorInto } from '../images/preprocess.js';
import { ImageLoadError } from '../images/image-problems.js';
import { createRng, deriveSeed } from '../images/random.js';
import { encodeFeatureChunk } from '../features/chunks.js';
import { DataMismatch, FeatureWidthMismatch } from './failures.js';
import type { SessionCache } from './sessions.js';
import { encodeResult, type FeatureJobData, type JobImage, type ResultHeader } from './feature-job.js';

export { DataMismatch };

export interface ComputeOptions {
  modelPath: string;
  /** Local folder that the job's dataRoot names on this machine. */
  dataRoot: string;
  worker: string;
  intraOpThreads?: number;
  loadConcurrency?: number;
  /** Sessions kept across jobs (a worker's); without it, one is started for this chunk. */
  sessions?: SessionCache;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Augmented views draw from a generator seeded by image, copy and seed, as on one machine. */
const viewRng = (image: JobImage, seed: number) => createRng(deriveSeed(seed, image.copy, parseInt(image.hash.slice(0, 8), 16)));

export async function computeChunk(jobId: string, data: FeatureJobData, options: ComputeOptions): Promise<Buffer> {
  const failed: ResultHeader['failed'] = [];
  const rows: [string, Float32Array][] = [];
  const where = (image: JobImage) => path.join(options.dataRoot, ...image.path.split('/'));
  let mismatch: DataMismatch | undefined;
  // The run computing its own share reads its own folder: then the file changed, not the mapping.
  const own = path.resolve(options.dataRoot) === path.resolve(data.dataRoot);
  const fix = own ? 'it changed since the dataset stage listed it: run again, which lists the images anew' : `is --data-root ${options.dataRoot} the folder that holds what the run has under ${data.dataRoot}?`;
  for await (const batch of extractFeatures<JobImage>({
    modelPath: options.modelPath,
    items: data.images,
    load: async (image, target, offset) => {
      const file = where(image);
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (e) {
        mismatch ??= new DataMismatch(
          `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): ${fix}`,
        );
        throw mismatch;
      }
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== image.hash) {
        mismatch ??= new DataMismatch(
          `${file} has sha256 ${actual.slice(0, 12)}…, the dataset's manifest says ${image.hash.slice(0, 12)}…: ` +
            `this machine's copy of "${image.path}" differs (${own ? fix : `is --data-root ${options.dataRoot} the right folder?`})`,
        );
        throw mismatch;
      }
      await loadImageTensorInto(bytes, data.spec, target, offset, image.copy ? { rng: viewRng(image, data.augmentSeed) } : {});
    },
    ...(options.sessions ? { pool: options.sessions.get(options.modelPath, data.requirements.runtime.device, options.intraOpThreads) } : {}),
    batchSize: data.batchSize,
    intraOpThreads: options.intraOpThreads,
    loadConcurrency: options.loadConcurrency,
    device: data.requirements.runtime.device,
    signal: options.signal,
    onProgress: (n) => options.onProgress?.(n, data.images.length),
    onError: (image, error) => {
      if (error instanceof DataMismatch) return;
      // Without the path: the run names the image by its own path, as a one-machine run does.
      if (error instanceof ImageLoadError) failed.push({ key: image.key, kind: error.kind, reason: error.reason });
      else failed.push({ key: image.key, reason: (error as Error).message });
    },
  })) {
    if (batch.featureWidth !== data.featureWidth) {
      throw new FeatureWidthMismatch(
        `the model ${options.modelPath} gives ${batch.featureWidth} values per image, the job needs ${data.featureWidth}: this machine's onnxruntime reads the model differently; run the worker with the run's tlpipe and onnxruntime versions`,
      );
    }
    batch.items.forEach((image, i) => rows.push([image.key, batch.features.slice(i * data.featureWidth, (i + 1) * data.featureWidth)]));
  }
  if (mismatch) throw mismatch;
  return encodeResult({ job: jobId, width: data.featureWidth, count: rows.length, failed, worker: options.worker }, encodeFeatureChunk(rows, data.featureWidth));
}
