// The chunk log's 8-bit row format for a quantized cut (src/features/chunks.ts):
// lossless for values on the grid, a quarter of float32's bytes, an error for
// a value off the grid, and never confused with a float32 chunk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { codedRows, encodeFeatureChunk, float32Rows } from '../src/features/chunks.js';

const hash = (i: number) => i.toString(16).padStart(64, '0');

for (const codes of [{ type: 'uint8', scale: 0.0235294, zeroPoint: 0 }, { type: 'int8', scale: 0.05, zeroPoint: -3 }] as const) {
  test(`${codes.type} codes: every value on the grid comes back exactly, in a quarter of the bytes`, () => {
    const codec = codedRows(codes);
    const [lo, hi] = codes.type === 'int8' ? [-128, 127] : [0, 255];
    const width = hi - lo + 1;
    // Every code once per row, in two orders.
    const rows: [string, Float32Array][] = [0, 1].map((r) => [hash(r), Float32Array.from({ length: width }, (_, k) => ((r ? hi - k : lo + k) - codes.zeroPoint) * codes.scale)]);
    const chunk = Buffer.from(codec.encode(rows, width));
    assert.equal(chunk.length, 8 + 2 * (32 + width));
    assert.ok(chunk.length * 3 < encodeFeatureChunk(rows, width).length);
    const back = codec.decode(chunk, width)!;
    assert.deepEqual([...back.keys()], [hash(0), hash(1)]);
    for (const [key, row] of rows) assert.deepEqual(back.get(key), row);
  });
}

test('a value off the grid is refused, not rounded; other formats and widths are not read as coded rows', () => {
  const codec = codedRows({ type: 'uint8', scale: 0.5, zeroPoint: 10 });
  assert.throws(() => codec.encode([[hash(1), Float32Array.of(0.5, 0.75)]], 2), /value 1 of row 000000000000 \(0\.75\) is not on the cut's quantization grid/);
  assert.throws(() => codec.encode([[hash(1), Float32Array.of(200)]], 1), /not on the cut's quantization grid/);
  const rows: [string, Float32Array][] = [[hash(2), Float32Array.of(0, 1, 2, 3)]];
  assert.equal(codec.decode(Buffer.from(float32Rows.encode(rows, 4)), 4), undefined);
  assert.equal(float32Rows.decode(Buffer.from(codec.encode(rows, 4)), 4), undefined);
  assert.equal(codec.decode(Buffer.from(codec.encode(rows, 4)), 2), undefined);
  assert.notEqual(codec.id, codedRows({ type: 'uint8', scale: 0.25, zeroPoint: 10 }).id);
});
