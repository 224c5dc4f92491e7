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

/** Joins fields back into one message's bytes. */
export function encodeFields(fields: readonly Field[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  const push = (part: Uint8Array) => {
    parts.push(part);
    total += part.length;
  };
  for (const f of fields) {
    push(Uint8Array.from(varintBytes(BigInt((f.no << 3) | f.wire))));
    if (f.wire === WireType.Varint) push(Uint8Array.from(varintBytes(f.value)));
    else if (f.wire === WireType.Bytes) {
      push(Uint8Array.from(varintBytes(BigInt(f.value.length))));
      push(f.value);
    } else push(f.value);
  }
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
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
  message: (no: number, fields: readonly Field[]): Field => ({
    no,
    wire: WireType.Bytes,
    value: encodeFields(fields),
  }),
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
