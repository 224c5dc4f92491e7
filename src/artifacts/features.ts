// `features` (features.extract): a float32 matrix, one row per usable image
// in manifest order, then the augmented training views; read together with
// the dataset manifest the rows point into.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DatasetImage, Split } from '../images/dataset-types.js';
import type { Artifact } from '../runner/step.js';
import { type DatasetManifest, readDatasetManifest } from './dataset-manifest.js';
import { defineKind } from './kind.js';

export const featuresKind = defineKind('features', 'cached feature vectors');

const FEATURES_FILE = 'features.f32';
const ROWS_FILE = 'rows.json';

export interface FeatureRows {
  width: number;
  /** Manifest index of each matrix row (the plain view of each usable image). */
  rows: number[];
  /** Manifest index of each augmented training view, stored after `rows`. */
  augmentedRows?: number[];
  /** Images that could not be decoded. */
  failed: { path: string; reason: string }[];
}

export async function writeFeatures(outDir: string, matrix: Float32Array, rows: FeatureRows): Promise<void> {
  await writeFile(path.join(outDir, FEATURES_FILE), new Uint8Array(matrix.buffer, matrix.byteOffset, matrix.byteLength));
  await writeFile(path.join(outDir, ROWS_FILE), JSON.stringify(rows));
}

export interface FeatureTable {
  manifest: DatasetManifest;
  width: number;
  matrix: Float32Array;
  rows: number[];
  augmentedRows: number[];
}

export async function readFeatureTable(features: Artifact, dataset: Artifact): Promise<FeatureTable> {
  const manifest = await readDatasetManifest(dataset);
  const { width, rows, augmentedRows = [] } = JSON.parse(await readFile(features.file(ROWS_FILE), 'utf8')) as FeatureRows;
  const bytes = await readFile(features.file(FEATURES_FILE));
  const matrix = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const count = rows.length + augmentedRows.length;
  if (matrix.length !== count * width) throw new Error(`features file holds ${matrix.length} values, expected ${count} × ${width}`);
  return { manifest, width, matrix, rows, augmentedRows };
}

export interface SplitFeatures {
  images: DatasetImage[];
  features: Float32Array;
  labels: Int32Array;
}

/** The rows of one split, in manifest order; with `augmented`, the training split's augmented views follow. */
export function splitFeatures(table: FeatureTable, split: Split, options: { augmented?: boolean } = {}): SplitFeatures {
  const plain = table.rows.map((imageIndex, row) => ({ image: table.manifest.images[imageIndex]!, row }));
  const extra = options.augmented ? table.augmentedRows.map((imageIndex, i) => ({ image: table.manifest.images[imageIndex]!, row: table.rows.length + i })) : [];
  const picked = [...plain, ...extra].filter((x) => x.image.split === split);
  const features = new Float32Array(picked.length * table.width);
  const labels = new Int32Array(picked.length);
  picked.forEach(({ image, row }, i) => {
    features.set(table.matrix.subarray(row * table.width, (row + 1) * table.width), i * table.width);
    labels[i] = image.label ?? -1;
  });
  return { images: picked.map((p) => p.image), features, labels };
}

/** One split's feature vectors and labels, read from a features artifact and its dataset. */
export async function readSplitFeatures(features: Artifact, dataset: Artifact, split: Split): Promise<SplitFeatures> {
  return splitFeatures(await readFeatureTable(features, dataset), split);
}
