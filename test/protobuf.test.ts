// The protobuf wire codec (src/onnx/protobuf.ts): the bytes it writes are
// checked against the encoding guide's own examples and hand-written byte
// strings, nested messages against eager ones, and every case is decoded back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireType, decodeFields, encodeFields, getInt64s, pb, type EncodableField } from '../src/onnx/protobuf.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

test("the encoding guide's examples: a varint 150, and a message holding it", () => {
  // https://protobuf.dev/programming-guides/encoding/: field 1 = 150 is 08 96 01; field 3 holding that message is 1a 03 08 96 01.
  assert.equal(hex(encodeFields([pb.varint(1, 150)])), '089601');
  assert.equal(hex(encodeFields([pb.nested(3, [pb.varint(1, 150)])])), '1a03089601');
  assert.equal(hex(encodeFields([pb.message(3, [pb.varint(1, 150)])])), '1a03089601');
  assert.equal(hex(encodeFields([pb.string(2, 'testing')])), '120774657374696e67');
});

test('negative int64, fixed-width fields, large field numbers and multi-byte lengths', () => {
  // -1 as int64 is ten bytes: nine 0xff and 0x01.
  assert.equal(hex(encodeFields([pb.varint(1, -1)])), '08ffffffffffffffffff01');
  assert.equal(hex(encodeFields([pb.float(2, 1)])), '150000803f');
  const fixed64 = { no: 4, wire: WireType.Fixed64, value: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) } as const;
  assert.equal(hex(encodeFields([fixed64])), '210102030405060708');
  // The largest field number, 2^29 - 1: its key (2^32 - 8 + wire) needs five bytes.
  const top = 2 ** 29 - 1;
  const big = encodeFields([pb.varint(top, 7)]);
  assert.equal(hex(big), 'f8ffffff0f07');
  assert.deepEqual(decodeFields(big), [{ no: top, wire: WireType.Varint, value: 7n }]);
  // A 300-byte payload: its length is the varint ac 02.
  const payload = Uint8Array.from({ length: 300 }, (_, i) => i % 251);
  const long = encodeFields([pb.bytes(5, payload)]);
  assert.equal(hex(long.subarray(0, 3)), '2aac02');
  assert.deepEqual(decodeFields(long)[0]!.value, payload);
});

test('nested messages encode to the same bytes as messages encoded level by level, and decode back', () => {
  const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) % 256);
  // A model-like tree: model { graph { node*, initializer { dims, raw_data } } }, lengths around varint boundaries.
  const tensor = (n: number, seed: number): EncodableField[] => [pb.packedVarints(1, [n, -3, 2 ** 40]), pb.varint(2, 1), pb.bytes(9, payload(n, seed))];
  const sizes = [0, 1, 127, 128, 16383, 16384, 70000];
  const nested = [pb.varint(1, 8), pb.nested(7, [pb.string(2, 'g'), ...sizes.map((n, i) => pb.nested(5, tensor(n, i)))]), pb.nested(8, [pb.varint(2, 13)])];
  const eager = [pb.varint(1, 8), pb.message(7, [pb.string(2, 'g'), ...sizes.map((n, i) => pb.message(5, tensor(n, i)))]), pb.message(8, [pb.varint(2, 13)])];
  const bytes = encodeFields(nested);
  assert.deepEqual(bytes, encodeFields(eager));

  const top = decodeFields(bytes);
  assert.deepEqual(top.map((f) => f.no), [1, 7, 8]);
  const graph = decodeFields(top[1]!.value as Uint8Array);
  const tensors = graph.filter((f) => f.no === 5).map((f) => decodeFields(f.value as Uint8Array));
  assert.equal(tensors.length, sizes.length);
  tensors.forEach((t, i) => {
    assert.deepEqual(getInt64s(t, 1), [BigInt(sizes[i]!), -3n, 2n ** 40n]);
    assert.deepEqual(t.find((f) => f.no === 9)!.value, payload(sizes[i]!, i));
  });
});

test('the same nested list used twice is written twice', () => {
  const shared = [pb.string(1, 'x')];
  assert.equal(hex(encodeFields([pb.nested(2, shared), pb.nested(3, shared)])), '1203' + '0a0178' + '1a03' + '0a0178');
});
