// The chunk format the resumable feature computation commits: feature
// vectors keyed by image content hash, so a killed run resumes from them.

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
