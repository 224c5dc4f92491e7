// `activations` (activations.extract): the frozen bottom's output at the cut,
// one row per usable image in manifest order, then the augmented training
// views, as features are. When the cut tensor is quantized (an int8 backbone)
// the rows are stored as its 8-bit codes with their scale and zero point:
// dequantized values are exactly (q − zero point) · scale, so nothing is lost
// and the file is a quarter of float32's. Training reads rows from the file in
// batches, never the whole matrix.
import { type FileHandle, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Artifact } from '../runner/step.js';
import type { FeatureRows } from './features.js';
import { readDatasetManifest, type DatasetManifest } from './dataset-manifest.js';
import { defineKind } from './kind.js';

export const activationsKind = defineKind('activations', 'activations at the cut');

const FLOAT_FILE = 'activations.f32';
const CODES_FILE = 'activations.q8';
const ROWS_FILE = 'rows.json';

/** How the cut tensor is quantized, when it is. */
export interface ActivationCodes {
  type: 'uint8' | 'int8';
  scale: number;
  zeroPoint: number;
}

export interface ActivationRows extends FeatureRows {
  /** Set when the rows are stored as 8-bit codes. */
  codes?: ActivationCodes;
}

/** Writes the rows; returns the bytes on disk. */
export async function writeActivations(outDir: string, matrix: Float32Array, rows: ActivationRows): Promise<number> {
  let bytes: Uint8Array;
  if (rows.codes) {
    const { type, scale, zeroPoint } = rows.codes;
    const [lo, hi] = type === 'int8' ? [-128, 127] : [0, 255];
    const codes = type === 'int8' ? new Int8Array(matrix.length) : new Uint8Array(matrix.length);
    for (let i = 0; i < matrix.length; i++) {
      const q = Math.round(matrix[i]! / scale) + zeroPoint;
      // The bottom dequantizes codes: a value off the grid means the cut is not what the split recorded.
      if (q < lo || q > hi || Math.abs((q - zeroPoint) * scale - matrix[i]!) > 1e-4 * Math.max(1, Math.abs(matrix[i]!))) {
        throw new Error(`activation ${i} (${matrix[i]}) is not on the cut's quantization grid (scale ${scale}, zero point ${zeroPoint})`);
      }
      codes[i] = q;
    }
    bytes = new Uint8Array(codes.buffer);
    await writeFile(path.join(outDir, CODES_FILE), bytes);
  } else {
    bytes = new Uint8Array(matrix.buffer, matrix.byteOffset, matrix.byteLength);
    await writeFile(path.join(outDir, FLOAT_FILE), bytes);
  }
  await writeFile(path.join(outDir, ROWS_FILE), JSON.stringify(rows));
  return bytes.byteLength;
}

/** Reads rows of the activation matrix from disk on demand. */
export class ActivationReader {
  private buffer = Buffer.alloc(0);
  private constructor(
    private readonly handle: FileHandle,
    readonly width: number,
    readonly rowCount: number,
    private readonly codes: ActivationCodes | undefined,
  ) {}

  static async open(artifact: Artifact, rows: ActivationRows): Promise<ActivationReader> {
    const file = artifact.file(rows.codes ? CODES_FILE : FLOAT_FILE);
    const handle = await open(file, 'r');
    const count = rows.rows.length + (rows.augmentedRows?.length ?? 0);
    const { size } = await handle.stat();
    const bytesPerValue = rows.codes ? 1 : 4;
    if (size !== count * rows.width * bytesPerValue) {
      await handle.close();
      throw new Error(`${file} holds ${size} bytes, expected ${count} rows × ${rows.width} values × ${bytesPerValue}`);
    }
    return new ActivationReader(handle, rows.width, count, rows.codes);
  }

  /** Copies the given matrix rows, in order, into `out` as float32 (consecutive rows read in one call). */
  async read(rows: ArrayLike<number>, out: Float32Array): Promise<void> {
    const W = this.width;
    const bytesPerValue = this.codes ? 1 : 4;
    const rowBytes = W * bytesPerValue;
    for (let i = 0; i < rows.length; ) {
      let run = 1;
      while (i + run < rows.length && rows[i + run] === rows[i]! + run) run++;
      const need = run * rowBytes;
      if (this.buffer.length < need) this.buffer = Buffer.alloc(need);
      const { bytesRead } = await this.handle.read(this.buffer, 0, need, rows[i]! * rowBytes);
      if (bytesRead !== need) throw new Error(`short read of the activations (${bytesRead} of ${need} bytes)`);
      const target = out.subarray(i * W, (i + run) * W);
      if (this.codes) {
        const { scale, zeroPoint, type } = this.codes;
        const b = this.buffer;
        const source = type === 'int8' ? new Int8Array(b.buffer, b.byteOffset, need) : new Uint8Array(b.buffer, b.byteOffset, need);
        for (let k = 0; k < target.length; k++) target[k] = (source[k]! - zeroPoint) * scale;
      } else {
        target.set(new Float32Array(this.buffer.buffer.slice(this.buffer.byteOffset, this.buffer.byteOffset + need)));
      }
      i += run;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export interface ActivationTable {
  manifest: DatasetManifest;
  rows: ActivationRows;
  /** Matrix rows and labels of one split (with the training split's augmented views when asked). */
  split(split: 'train' | 'val', options?: { augmented?: boolean }): { matrixRows: Int32Array; labels: Int32Array; imageIndices: number[] };
}

export async function readActivationTable(activations: Artifact, dataset: Artifact): Promise<ActivationTable> {
  const manifest = await readDatasetManifest(dataset);
  const rows = JSON.parse(await readFile(activations.file(ROWS_FILE), 'utf8')) as ActivationRows;
  return {
    manifest,
    rows,
    split(which, options = {}) {
      const plain = rows.rows.map((imageIndex, row) => ({ imageIndex, row }));
      const extra = options.augmented ? (rows.augmentedRows ?? []).map((imageIndex, i) => ({ imageIndex, row: rows.rows.length + i })) : [];
      const picked = [...plain, ...extra].filter((x) => manifest.images[x.imageIndex]!.split === which);
      return {
        matrixRows: Int32Array.from(picked, (p) => p.row),
        labels: Int32Array.from(picked, (p) => manifest.images[p.imageIndex]!.label ?? -1),
        imageIndices: picked.map((p) => p.imageIndex),
      };
    },
  };
}
