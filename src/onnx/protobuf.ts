// A minimal protocol-buffers wire codec: enough to read, edit and write ONNX
// models without a generated schema. A message is kept as its ordered list of
// fields, so fields we do not understand survive a round trip untouched.

export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  Bytes = 2,
  Fixed32 = 5,
}

export type Field =
  | { no: number; wire: WireType.Varint; value: bigint }
  | { no: number; wire: WireType.Fixed64; value: Uint8Array }
  | { no: number; wire: WireType.Bytes; value: Uint8Array }
  | { no: number; wire: WireType.Fixed32; value: Uint8Array };

export class ProtobufError extends Error {}

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new ProtobufError('truncated varint');
    const byte = buf[pos++]!;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 70n) throw new ProtobufError('varint too long');
  }
}

/** Splits one message's bytes into its fields (not recursive). */
export function decodeFields(buf: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = readVarint(buf, pos);
    pos = afterKey;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (no === 0) throw new ProtobufError('field number 0');
    switch (wire) {
      case WireType.Varint: {
        const [value, next] = readVarint(buf, pos);
        fields.push({ no, wire, value });
        pos = next;
        break;
      }
      case WireType.Fixed64:
      case WireType.Fixed32: {
        const len = wire === WireType.Fixed64 ? 8 : 4;
        if (pos + len > buf.length) throw new ProtobufError('truncated fixed field');
        fields.push({ no, wire, value: buf.subarray(pos, pos + len) });
        pos += len;
        break;
      }
      case WireType.Bytes: {
        const [lenBig, next] = readVarint(buf, pos);
        const len = Number(lenBig);
        if (next + len > buf.length) throw new ProtobufError('truncated length-delimited field');
        fields.push({ no, wire, value: buf.subarray(next, next + len) });
        pos = next + len;
        break;
      }
      default:
        throw new ProtobufError(`unsupported wire type ${wire}`);
    }
  }
  return fields;
}

function varintBytes(value: bigint): number[] {
  // Negative int64 values are encoded as their 64-bit two's complement.
  let v = value < 0n ? (1n << 64n) + value : value;
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

/**
 * A length-delimited field whose content is a message still held as fields:
 * written only as part of the message around it, straight into its one
 * buffer. A model's weights are then copied once when it is encoded, not
 * once per level of nesting (tensor, graph, model).
 */
export interface NestedField {
  no: number;
  wire: WireType.Bytes;
  nested: readonly EncodableField[];
}

export type EncodableField = Field | NestedField;

/** Bytes of a non-negative varint below 2^53 (keys and lengths). */
function smallVarintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeSmallVarint(out: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

/** Content sizes of nested messages, computed once and read again while writing. */
type Sizes = Map<readonly EncodableField[], number>;

function messageSize(fields: readonly EncodableField[], sizes: Sizes): number {
  let total = 0;
  for (const f of fields) {
    total += smallVarintSize(f.no * 8 + f.wire);
    if ('nested' in f) {
      const inner = messageSize(f.nested, sizes);
      sizes.set(f.nested, inner);
      total += smallVarintSize(inner) + inner;
    } else if (f.wire === WireType.Varint) total += varintBytes(f.value).length;
    else if (f.wire === WireType.Bytes) total += smallVarintSize(f.value.length) + f.value.length;
    else total += f.value.length;
  }
  return total;
}

function writeMessage(fields: readonly EncodableField[], out: Uint8Array, pos: number, sizes: Sizes): number {
  for (const f of fields) {
    pos = writeSmallVarint(out, pos, f.no * 8 + f.wire);
    if ('nested' in f) {
      pos = writeSmallVarint(out, pos, sizes.get(f.nested)!);
      pos = writeMessage(f.nested, out, pos, sizes);
    } else if (f.wire === WireType.Varint) {
      for (const byte of varintBytes(f.value)) out[pos++] = byte;
    } else {
      if (f.wire === WireType.Bytes) pos = writeSmallVarint(out, pos, f.value.length);
      out.set(f.value, pos);
      pos += f.value.length;
    }
  }
  return pos;
}

/** Joins fields (nested ones included) into one message's bytes: sized first, then written into one buffer. */
export function encodeFields(fields: readonly EncodableField[]): Uint8Array {
  const sizes: Sizes = new Map();
  const out = new Uint8Array(messageSize(fields, sizes));
  const end = writeMessage(fields, out, 0, sizes);
  if (end !== out.length) throw new Error(`protobuf encoder wrote ${end} bytes of ${out.length}`);
  return out;
}

// Field constructors and readers, so callers never handle wire types directly.
export const pb = {
  varint: (no: number, value: number | bigint | boolean): Field => ({
    no,
    wire: WireType.Varint,
    value: BigInt(typeof value === 'boolean' ? Number(value) : value),
  }),
  bytes: (no: number, value: Uint8Array): Field => ({ no, wire: WireType.Bytes, value }),
  string: (no: number, value: string): Field => ({
    no,
    wire: WireType.Bytes,
    value: new TextEncoder().encode(value),
  }),
  message: (no: number, fields: readonly EncodableField[]): Field => ({
    no,
    wire: WireType.Bytes,
    value: encodeFields(fields),
  }),
  /** A message field encoded only with the message around it (see NestedField). */
  nested: (no: number, fields: readonly EncodableField[]): NestedField => ({ no, wire: WireType.Bytes, nested: fields }),
  float: (no: number, value: number): Field => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    return { no, wire: WireType.Fixed32, value: b };
  },
  /** Packed repeated int64 (how ONNX writers usually store `ints` and `dims`). */
  packedVarints: (no: number, values: readonly (number | bigint)[]): Field => ({
    no,
    wire: WireType.Bytes,
    value: Uint8Array.from(values.flatMap((v) => varintBytes(BigInt(v)))),
  }),
};

export function fieldsNamed(fields: readonly Field[], no: number): Field[] {
  return fields.filter((f) => f.no === no);
}

export function getString(fields: readonly Field[], no: number): string | undefined {
  const f = fields.find((x) => x.no === no && x.wire === WireType.Bytes);
  return f ? new TextDecoder().decode(f.value as Uint8Array) : undefined;
}

export function getStrings(fields: readonly Field[], no: number): string[] {
  return fields
    .filter((x) => x.no === no && x.wire === WireType.Bytes)
    .map((f) => new TextDecoder().decode(f.value as Uint8Array));
}

export function getVarint(fields: readonly Field[], no: number): bigint | undefined {
  const f = fields.find((x) => x.no === no && x.wire === WireType.Varint);
  return f ? (f.value as bigint) : undefined;
}

/** Signed view of an int64 varint. */
export function toInt64(v: bigint): bigint {
  return v >= 1n << 63n ? v - (1n << 64n) : v;
}

/** Repeated int64 that may be packed or not. */
export function getInt64s(fields: readonly Field[], no: number): bigint[] {
  const out: bigint[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire === WireType.Varint) out.push(toInt64(f.value));
    else if (f.wire === WireType.Bytes) {
      let pos = 0;
      while (pos < f.value.length) {
        const [v, next] = readVarint(f.value, pos);
        out.push(toInt64(v));
        pos = next;
      }
    }
  }
  return out;
}

export function getMessages(fields: readonly Field[], no: number): Field[][] {
  return fields
    .filter((x) => x.no === no && x.wire === WireType.Bytes)
    .map((f) => decodeFields(f.value as Uint8Array));
}
