// `tlpipe predict`: an exported model (backbone + head + softmax, with its
// labels and preprocessing in its metadata) over image files and folders.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { TRANSFORM_METADATA_KEY } from '../artifacts/exported-model.js';
import { extractFeatures } from '../features/extract.js';
import { idFromFileName } from '../images/dataset-folders.js';
import { hasImageExtension } from '../images/formats.js';
import { compareIds } from '../images/order.js';
import { loadImageTensorInto } from '../images/preprocess.js';
import { resolveTransform, type TransformSpec } from '../images/transform-spec.js';
import { walkFiles } from '../images/walk.js';
import { describeImageInput } from '../onnx/inspect.js';
import { readLabels } from '../onnx/merge.js';
import { readModelFile } from '../onnx/model.js';
import { UsageError } from '../runner/errors.js';

export interface PredictedImage {
  path: string;
  id: number | string;
  label: string;
  labelIndex: number;
  confidence: number;
  probabilities: number[];
}

export interface PredictResult {
  labels: string[];
  predictions: PredictedImage[];
  failed: { path: string; reason: string }[];
}

/** Image files named directly, or found (recursively) in the folders named. */
export async function listImages(inputs: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const input of inputs) {
    const st = await stat(input).catch(() => undefined);
    if (!st) throw new UsageError(`${input} does not exist.`);
    if (st.isDirectory()) {
      const walked = await walkFiles(path.resolve(input));
      files.push(...walked.files.map((f) => f.path).filter((f) => hasImageExtension(f)));
    } else files.push(path.resolve(input));
  }
  return files;
}

export async function predictImages(modelFile: string, inputs: string[], options: { signal?: AbortSignal } = {}): Promise<PredictResult> {
  let model;
  try {
    model = await readModelFile(modelFile);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const labels = readLabels(model);
  if (!labels) throw new UsageError(`${modelFile} has no label names: export it with a pipeline's export.model stage.`);
  const stored = model.metadata.find((m) => m.key === TRANSFORM_METADATA_KEY)?.value;
  const input = describeImageInput(model);
  const spec: TransformSpec = stored ? (JSON.parse(stored) as TransformSpec) : resolveTransform({}, input);

  const images = await listImages(inputs);
  const predictions: PredictedImage[] = [];
  const failed: { path: string; reason: string }[] = [];
  for await (const batch of extractFeatures<string>({
    modelPath: modelFile,
    items: images,
    load: (file, target, offset) => loadImageTensorInto(file, spec, target, offset),
    signal: options.signal,
    onError: (file, error) => failed.push({ path: file, reason: (error as Error).message }),
  })) {
    const C = batch.featureWidth;
    batch.items.forEach((file, i) => {
      const probabilities = Array.from(batch.features.subarray(i * C, (i + 1) * C));
      let best = 0;
      for (let c = 1; c < C; c++) if (probabilities[c]! > probabilities[best]!) best = c;
      predictions.push({
        path: file,
        id: idFromFileName(path.basename(file)),
        label: labels[best] ?? String(best),
        labelIndex: best,
        confidence: probabilities[best]!,
        probabilities,
      });
    });
  }
  predictions.sort((a, b) => compareIds(a.id, b.id) || a.path.localeCompare(b.path));
  return { labels, predictions, failed };
}
