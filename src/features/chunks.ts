// The chunk formats the resumable row computation commits (features.extract,
// activations.extract): rows keyed by image content hash, so a killed run
// resumes from them. Float32 rows, or a quantized cut's 8-bit codes.

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
      const recordBytes = 32 + width;
      const out = Buffer.alloc(8 + entries.length * recordBytes);
      out.writeUInt32LE(entries.length, 0);
      out.writeUInt32LE(width, 4);
      entries.forEach(([hash, row], i) => {
        const at = 8 + i * recordBytes;
        Buffer.from(hash, 'hex').copy(out, at);
        for (let k = 0; k < width; k++) {
          const v = row[k]!;
          const q = Math.round(v / scale) + zeroPoint;
          if (q < lo || q > hi || Math.abs((q - zeroPoint) * scale - v) > 1e-4 * Math.max(1, Math.abs(v))) {
            throw new Error(`value ${k} of row ${hash.slice(0, 12)} (${v}) is not on the cut's quantization grid (scale ${scale}, zero point ${zeroPoint})`);
          }
          out[at + 32 + k] = q & 0xff;
        }
      });
      return out;
    },
    decode(chunk, width) {
      if (chunk.length < 8) return undefined;
      const count = chunk.readUInt32LE(0);
      const recordBytes = 32 + width;
      if (chunk.readUInt32LE(4) !== width || chunk.length !== 8 + count * recordBytes) return undefined;
      const out = new Map<string, Float32Array>();
      const signed = type === 'int8';
      for (let i = 0; i < count; i++) {
        const at = 8 + i * recordBytes;
        const row = new Float32Array(width);
        for (let k = 0; k < width; k++) {
          const b = chunk[at + 32 + k]!;
          row[k] = ((signed && b > 127 ? b - 256 : b) - zeroPoint) * scale;
        }
        out.set(chunk.toString('hex', at, at + 32), row);
      }
      return out;
    },
  };
}
