// Builds ONNX models (ModelProto bytes) from plain descriptions: used for the
// head's training graph, the merged export model and test models.
// Field numbers follow onnx/onnx.proto.
import { type Field, encodeFields, pb } from './protobuf.js';

export type ElemType = 'float32' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool' | 'float64';

/** TensorProto.DataType codes. */
export const ELEM_TYPE_CODE: Record<ElemType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

export const ELEM_TYPE_BY_CODE: Record<number, ElemType> = Object.fromEntries(
  Object.entries(ELEM_TYPE_CODE).map(([k, v]) => [v, k as ElemType]),
);

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

export interface TensorInit {
  name: string;
  type: ElemType;
  dims: number[];
  data: TensorData;
}

export type AttrValue =
  | { kind: 'int'; value: number | bigint }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: (number | bigint)[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'tensor'; value: TensorInit };

/** Attribute constructors: ONNX distinguishes int from float, JavaScript does not. */
export const attr = {
  int: (value: number | bigint): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
  ints: (value: (number | bigint)[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: number[]): AttrValue => ({ kind: 'floats', value }),
  tensor: (value: TensorInit): AttrValue => ({ kind: 'tensor', value }),
};

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export interface ValueSpec {
  name: string;
  type: ElemType;
  /** A number is a fixed size, a string a symbolic (dynamic) one such as 'batch'. */
  dims: (number | string)[];
}

export interface GraphSpec {
  name?: string;
  nodes: NodeSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: TensorInit[];
}

export interface ModelSpec extends GraphSpec {
  opset?: number;
  irVersion?: number;
  producer?: string;
  metadata?: Record<string, string>;
}

export function tensorFields(t: TensorInit): Field[] {
  const fields: Field[] = t.dims.map((d) => pb.varint(1, d));
  fields.push(pb.varint(2, ELEM_TYPE_CODE[t.type]));
  fields.push(pb.string(8, t.name));
  // raw_data is little-endian, which is what typed arrays hold on every platform Node supports.
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  fields.push(pb.bytes(9, raw.slice()));
  return fields;
}

function attributeFields(name: string, a: AttrValue): Field[] {
  const f: Field[] = [pb.string(1, name)];
  switch (a.kind) {
    case 'float':
      f.push(pb.float(2, a.value), pb.varint(20, 1));
      break;
    case 'int':
      f.push(pb.varint(3, a.value), pb.varint(20, 2));
      break;
    case 'string':
      f.push(pb.string(4, a.value), pb.varint(20, 3));
      break;
    case 'tensor':
      f.push(pb.message(5, tensorFields(a.value)), pb.varint(20, 4));
      break;
    case 'floats':
      for (const v of a.value) f.push(pb.float(7, v));
      f.push(pb.varint(20, 6));
      break;
    case 'ints':
      for (const v of a.value) f.push(pb.varint(8, v));
      f.push(pb.varint(20, 7));
      break;
  }
  return f;
}

export function nodeFields(n: NodeSpec): Field[] {
  const f: Field[] = [];
  for (const i of n.inputs) f.push(pb.string(1, i));
  for (const o of n.outputs) f.push(pb.string(2, o));
  if (n.name) f.push(pb.string(3, n.name));
  f.push(pb.string(4, n.op));
  for (const [k, v] of Object.entries(n.attrs ?? {})) f.push(pb.message(5, attributeFields(k, v)));
  if (n.domain) f.push(pb.string(7, n.domain));
  return f;
}

export function valueInfoFields(v: ValueSpec): Field[] {
  const dims = v.dims.map((d) => pb.message(1, [typeof d === 'number' ? pb.varint(1, d) : pb.string(2, d)]));
  const tensorType = [pb.varint(1, ELEM_TYPE_CODE[v.type]), pb.message(2, dims)];
  return [pb.string(1, v.name), pb.message(2, [pb.message(1, tensorType)])];
}

export function graphFields(g: GraphSpec): Field[] {
  return [
    ...g.nodes.map((n) => pb.message(1, nodeFields(n))),
    pb.string(2, g.name ?? 'graph'),
    ...(g.initializers ?? []).map((t) => pb.message(5, tensorFields(t))),
    ...g.inputs.map((v) => pb.message(11, valueInfoFields(v))),
    ...g.outputs.map((v) => pb.message(12, valueInfoFields(v))),
  ];
}

export function metadataField(key: string, value: string): Field {
  return pb.message(14, [pb.string(1, key), pb.string(2, value)]);
}

export function buildModel(m: ModelSpec): Uint8Array {
  const fields: Field[] = [
    pb.varint(1, m.irVersion ?? 8),
    pb.string(2, m.producer ?? 'tlpipe'),
    pb.message(7, graphFields(m)),
    pb.message(8, [pb.string(1, ''), pb.varint(2, m.opset ?? 17)]),
    ...Object.entries(m.metadata ?? {}).map(([k, v]) => metadataField(k, v)),
  ];
  return encodeFields(fields);
}
