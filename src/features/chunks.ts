// The chunk formats the resumable row computation commits (features.extract,
// activations.extract): rows keyed by image content hash, so a killed run
// resumes from them. Float32 rows, or a quantized cut's 8-bit codes.

// Every chunk is framed the same way: [count u32][width u32] then, per image,
// its 32-byte sha256 and `width` values of `valueBytes` bytes each.
function writeChunk(
  entries: [string, Float32Array][], width: number, valueBytes: number,
  writeRow: (row: Float32Array, out: Buffer, at: number, hash: string) => void,
): Uint8Array {
  const recordBytes = 32 + width * valueBytes;
  const out = Buffer.alloc(8 + entries.length * recordBytes);
  out.writeUInt32LE(entries.length, 0);
  out.writeUInt32LE(width, 4);
  entries.forEach(([hash, row], i) => {
    const at = 8 + i * recordBytes;
    Buffer.from(hash, 'hex').copy(out, at);
    writeRow(row, out, at + 32, hash);
  });
  return out;
}

/** The entries of a framed chunk, or undefined if it was written for another width (or value size). */
function readChunk(chunk: Buffer, width: number, valueBytes: number, readRow: (chunk: Buffer, at: number) => Float32Array): Map<string, Float32Array> | undefined {
  if (chunk.length < 8) return undefined;
  const count = chunk.readUInt32LE(0);
  const recordBytes = 32 + width * valueBytes;
  if (chunk.readUInt32LE(4) !== width || chunk.length !== 8 + count * recordBytes) return undefined;
  const out = new Map<string, Float32Array>();
  for (let i = 0; i < count; i++) {
    const at = 8 + i * recordBytes;
    out.set(chunk.toString('hex', at, at + 32), readRow(chunk, at + 32));
  }
  return out;
}

/** A chunk of float32 rows: [count u32][width u32] then, per image, its 32-byte sha256 and `width` float32 values. */
export function encodeFeatureChunk(entries: [string, Float32Array][], width: number): Uint8Array {
  return writeChunk(entries, width, 4, (row, out, at) => Buffer.from(row.buffer, row.byteOffset, row.byteLength).copy(out, at));
}

/** The entries of a float32 chunk, or undefined if it was written for another feature width. */
export function decodeFeatureChunk(chunk: Buffer, width: number): Map<string, Float32Array> | undefined {
  return readChunk(chunk, width, 4, (c, at) => {
    const row = new Float32Array(width);
    Buffer.from(row.buffer).set(c.subarray(at, at + width * 4));
    return row;
  });
}

/** How a quantized cut's values map to 8-bit codes: value = (code − zeroPoint) · scale. */
export interface RowCodes {
  type: 'uint8' | 'int8';
  scale: number;
  zeroPoint: number;
}

/** How a chunk log stores its rows: float32, or (for a quantized cut) 8-bit codes. */
export interface RowCodec {
  /** Part of the chunk scope: logs written another way are never read as this one. */
  id: string;
  encode(entries: [string, Float32Array][], width: number): Uint8Array;
  decode(chunk: Buffer, width: number): Map<string, Float32Array> | undefined;
}

export const float32Rows: RowCodec = { id: 'float32', encode: encodeFeatureChunk, decode: decodeFeatureChunk };

/**
 * A quarter of float32's bytes for rows on a quantization grid: [count u32][width u32]
 * then, per image, its 32-byte sha256 and `width` codes. Lossless: a value off
 * the grid (the cut is not what the split recorded) is an error, not rounded.
 */
export function codedRows(codes: RowCodes): RowCodec {
  const { type, scale, zeroPoint } = codes;
  const [lo, hi] = type === 'int8' ? [-128, 127] : [0, 255];
  return {
    id: `${type}:${scale}:${zeroPoint}`,
    encode(entries, width) {
      return writeChunk(entries, width, 1, (row, out, at, hash) => {
        for (let k = 0; k < width; k++) {
          const v = row[k]!;
          const q = Math.round(v / scale) + zeroPoint;
          if (q < lo || q > hi || Math.abs((q - zeroPoint) * scale - v) > 1e-4 * Math.max(1, Math.abs(v))) {
            throw new Error(`value ${k} of row ${hash.slice(0, 12)} (${v}) is not on the cut's quantization grid (scale ${scale}, zero point ${zeroPoint})`);
          }
          out[at + k] = q & 0xff;
        }
      });
    },
    decode(chunk, width) {
      const signed = type === 'int8';
      return readChunk(chunk, width, 1, (c, at) => {
        const row = new Float32Array(width);
        for (let k = 0; k < width; k++) {
          const b = c[at + k]!;
          row[k] = ((signed && b > 127 ? b - 256 : b) - zeroPoint) * scale;
        }
        return row;
      });
    },
  };
}
