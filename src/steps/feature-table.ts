// The features artifact (a float32 matrix, one row per usable image in
// manifest order) and the chunk format its resumable computation commits.
import { readFile } from 'node:fs/promises';
import type { Artifact } from '../runner/step.js';
import type { DatasetImage, Split } from '../images/dataset.js';
import { type DatasetManifest, MANIFEST_FILE } from './dataset.js';

export const FEATURES_FILE = 'features.f32';
export const ROWS_FILE = 'rows.json';

export interface FeatureRows {
  width: number;
  /** Manifest index of each matrix row (the plain view of each usable image). */
  rows: number[];
  /** Manifest index of each augmented training view, stored after `rows`. */
  augmentedRows?: number[];
  /** Images that could not be decoded. */
  failed: { path: string; reason: string }[];
}

/** A chunk: [count u32][width u32] then, per image, its 32-byte sha256 and `width` float32 values. */
export function encodeFeatureChunk(entries: [string, Float32Array][], width: number): Uint8Array {
  const recordBytes = 32 + width * 4;
  const out = Buffer.alloc(8 + entries.length * recordBytes);
  out.writeUInt32LE(entries.length, 0);
  out.writeUInt32LE(width, 4);
  entries.forEach(([hash, row], i) => {
    const at = 8 + i * recordBytes;
    Buffer.from(hash, 'hex').copy(out, at);
    Buffer.from(row.buffer, row.byteOffset, row.byteLength).copy(out, at + 32);
  });
  return out;
}

/** The entries of a chunk, or undefined if it was written for another feature width. */
export function decodeFeatureChunk(chunk: Buffer, width: number): Map<string, Float32Array> | undefined {
  if (chunk.length < 8) return undefined;
  const count = chunk.readUInt32LE(0);
  const recordBytes = 32 + width * 4;
  if (chunk.readUInt32LE(4) !== width || chunk.length !== 8 + count * recordBytes) return undefined;
  const out = new Map<string, Float32Array>();
  for (let i = 0; i < count; i++) {
    const at = 8 + i * recordBytes;
    const row = new Float32Array(width);
    Buffer.from(row.buffer).set(chunk.subarray(at + 32, at + recordBytes));
    out.set(chunk.toString('hex', at, at + 32), row);
  }
  return out;
}

export interface FeatureTable {
  manifest: DatasetManifest;
  width: number;
  matrix: Float32Array;
  rows: number[];
  augmentedRows: number[];
}

export async function readFeatureTable(features: Artifact, dataset: Artifact): Promise<FeatureTable> {
  const manifest = JSON.parse(await readFile(dataset.file(MANIFEST_FILE), 'utf8')) as DatasetManifest;
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
