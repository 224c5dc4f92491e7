// Reads an ONNX ModelProto into a light, editable structure and writes it back.
// Every element keeps the protobuf fields it was read from, so whatever this
// view does not model (doc strings, training info, functions, quantization
// annotations...) is written back byte for byte. Elements are replaced, not
// mutated: build new ones with makeNode / makeInitializer / makeValueInfo.
import { ExpectedFailure } from '../failure.js';
import { readFile } from 'node:fs/promises';
import {
  type EncodableField,
  type Field,
  WireType,
  ProtobufError,
  decodeFields,
  encodeFields,
  getInt64s,
  getMessages,
  getString,
  getStrings,
  getVarint,
  pb,
  toInt64,
} from './protobuf.js';
import {
  type NodeSpec,
  type TensorInit,
  type ValueSpec,
  nodeFields,
  tensorFields,
  valueInfoFields,
} from './builder.js';

/** A file that is not a usable ONNX model, with a message that says what to do. */
export class OnnxModelError extends ExpectedFailure {
  override name = 'OnnxModelError';
  readonly reason = 'model';
}

/** A dimension: a fixed size, a symbolic name (dynamic), or null (unknown). */
export type Dim = number | string | null;

export interface OpsetImport {
  /** '' is the default ONNX domain ('ai.onnx'). */
  domain: string;
  version: number;
}

export interface MetadataEntry {
  key: string;
  value: string;
}

export type AttributeValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'graph' | 'graphs' | 'other'; value: null };

export type OnnxAttribute = AttributeValue & { readonly name: string };

export interface OnnxNode {
  readonly name: string;
  readonly opType: string;
  /** '' for the default ONNX domain, e.g. 'com.microsoft' for QLinearAdd. */
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: readonly OnnxAttribute[];
  readonly fields: readonly Field[];
}

export interface OnnxTensor {
  readonly name: string;
  /** 'float32', 'uint8', 'int64'... (see dataTypeName). */
  readonly elemType: string;
  readonly dims: readonly number[];
  readonly external: boolean;
  readonly fields: readonly Field[];
}

export interface OnnxValueInfo {
  readonly name: string;
  /** Element type for tensor values, null for sequences, maps and the like. */
  readonly elemType: string | null;
  /** null when the rank is unknown. */
  readonly dims: readonly Dim[] | null;
  readonly fields: readonly Field[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  /** The values a caller feeds: graph inputs that are not initializers. */
  inputs: OnnxValueInfo[];
  /** Graph inputs that name an initializer (required by IR versions < 4); written after `inputs`. */
  initializerInputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Shapes the file records for intermediate tensors (often empty). */
  valueInfo: OnnxValueInfo[];
  readonly fields: readonly Field[];
}

export interface OnnxModel {
  /** The file path or label used in messages. */
  source: string;
  irVersion: number;
  opsetImports: OpsetImport[];
  metadata: MetadataEntry[];
  graph: OnnxGraph;
  readonly fields: readonly Field[];
}

// Field numbers from onnx/onnx.proto.
const MODEL = { irVersion: 1, graph: 7, opsetImport: 8, metadata: 14 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, floatData: 4, int32Data: 5, int64Data: 7, name: 8, rawData: 9, doubleData: 10, dataLocation: 14 } as const;
const EXTERNAL_DATA_LOCATION = 1n;

const DATA_TYPE_NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128',
  16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2', 20: 'float8e5m2fnuz',
  21: 'uint4', 22: 'int4',
};

export function dataTypeName(code: number): string {
  return DATA_TYPE_NAMES[code] ?? `data type ${code}`;
}

// ---------------------------------------------------------------- decoding

// Wire types the model-level and graph-level fields must have: a mismatch
// means the bytes are something else that happened to look like protobuf.
const MODEL_WIRE: Record<number, WireType> = {
  1: WireType.Varint, 2: WireType.Bytes, 3: WireType.Bytes, 4: WireType.Bytes, 5: WireType.Varint,
  6: WireType.Bytes, 7: WireType.Bytes, 8: WireType.Bytes, 14: WireType.Bytes, 20: WireType.Bytes, 25: WireType.Bytes,
};
const GRAPH_WIRE: Record<number, WireType> = {
  1: WireType.Bytes, 2: WireType.Bytes, 5: WireType.Bytes, 10: WireType.Bytes, 11: WireType.Bytes,
  12: WireType.Bytes, 13: WireType.Bytes, 14: WireType.Bytes, 15: WireType.Bytes, 16: WireType.Bytes,
};

class NotOnnx extends Error {}

function checkWireTypes(fields: readonly Field[], expected: Record<number, WireType>, what: string): void {
  for (const f of fields) {
    const want = expected[f.no];
    if (want !== undefined && want !== f.wire) throw new NotOnnx(`its ${what} has a malformed field ${f.no}`);
  }
}

function decodeOrExplain(bytes: Uint8Array, what: string): Field[] {
  try {
    return decodeFields(bytes);
  } catch (e) {
    if (e instanceof ProtobufError) throw new NotOnnx(`its ${what} cannot be decoded as protobuf (${e.message}); the file may be truncated`);
    throw e;
  }
}

function parseDims(shapeFields: Field[]): Dim[] {
  return getMessages(shapeFields, 1).map((dim) => {
    const value = getVarint(dim, 1);
    if (value !== undefined) return Number(toInt64(value));
    const param = getString(dim, 2);
    return param ? param : null;
  });
}

export function parseValueInfo(fields: Field[]): OnnxValueInfo {
  const name = getString(fields, 1) ?? '';
  const type = getMessages(fields, 2)[0];
  const tensorType = type ? getMessages(type, 1)[0] : undefined;
  if (!tensorType) return { name, elemType: null, dims: null, fields };
  const code = getVarint(tensorType, 1);
  const shape = getMessages(tensorType, 2)[0];
  return {
    name,
    elemType: code === undefined ? null : dataTypeName(Number(code)),
    dims: shape ? parseDims(shape) : null,
    fields,
  };
}

export function parseTensor(fields: Field[]): OnnxTensor {
  return {
    name: getString(fields, TENSOR.name) ?? '',
    elemType: dataTypeName(Number(getVarint(fields, TENSOR.dataType) ?? 0n)),
    dims: getInt64s(fields, TENSOR.dims).map(Number),
    external: getVarint(fields, TENSOR.dataLocation) === EXTERNAL_DATA_LOCATION,
    fields,
  };
}

function readFloats(fields: readonly Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire !== WireType.Fixed32 && f.wire !== WireType.Bytes) continue;
    const view = new DataView(f.value.buffer, f.value.byteOffset, f.value.byteLength);
    for (let i = 0; i + 4 <= f.value.byteLength; i += 4) out.push(view.getFloat32(i, true));
  }
  return out;
}

const ATTRIBUTE_TYPES: Record<number, AttributeValue['type']> = {
  1: 'float', 2: 'int', 3: 'string', 4: 'tensor', 5: 'graph', 6: 'floats', 7: 'ints', 8: 'strings', 10: 'graphs',
};

function parseAttribute(fields: Field[]): OnnxAttribute {
  const name = getString(fields, 1) ?? '';
  const type = ATTRIBUTE_TYPES[Number(getVarint(fields, 20) ?? 0n)] ?? 'other';
  switch (type) {
    case 'float':
      return { name, type, value: readFloats(fields, 2)[0] ?? 0 };
    case 'int':
      return { name, type, value: Number(toInt64(getVarint(fields, 3) ?? 0n)) };
    case 'string':
      return { name, type, value: getString(fields, 4) ?? '' };
    case 'floats':
      return { name, type, value: readFloats(fields, 7) };
    case 'ints':
      return { name, type, value: getInt64s(fields, 8).map(Number) };
    case 'strings':
      return { name, type, value: getStrings(fields, 9) };
    case 'tensor':
      return { name, type, value: parseTensor(getMessages(fields, 5)[0] ?? []) };
    default:
      return { name, type, value: null };
  }
}

export function parseNode(fields: Field[]): OnnxNode {
  return {
    name: getString(fields, NODE.name) ?? '',
    opType: getString(fields, NODE.opType) ?? '',
    domain: getString(fields, NODE.domain) ?? '',
    inputs: getStrings(fields, NODE.input),
    outputs: getStrings(fields, NODE.output),
    attributes: getMessages(fields, NODE.attribute).map(parseAttribute),
    fields,
  };
}

function parseGraph(bytes: Uint8Array): OnnxGraph {
  const fields = decodeOrExplain(bytes, 'graph');
  checkWireTypes(fields, GRAPH_WIRE, 'graph');
  const nodes: OnnxNode[] = [];
  for (const f of fields) {
    if (f.no !== GRAPH.node) continue;
    const node = parseNode(decodeOrExplain(f.value as Uint8Array, 'graph'));
    if (!node.opType) throw new NotOnnx('its graph has a node without an operator type');
    nodes.push(node);
  }
  const initializers = fields
    .filter((f) => f.no === GRAPH.initializer)
    .map((f) => parseTensor(decodeOrExplain(f.value as Uint8Array, 'initializers')));
  const initializerNames = new Set(initializers.map((t) => t.name));
  const allInputs = getMessages(fields, GRAPH.input).map(parseValueInfo);
  const outputs = getMessages(fields, GRAPH.output).map(parseValueInfo);
  if (outputs.length === 0) throw new NotOnnx('its graph has no outputs');
  return {
    name: getString(fields, GRAPH.name) ?? '',
    nodes,
    initializers,
    inputs: allInputs.filter((v) => !initializerNames.has(v.name)),
    initializerInputs: allInputs.filter((v) => initializerNames.has(v.name)),
    outputs,
    valueInfo: getMessages(fields, GRAPH.valueInfo).map(parseValueInfo),
    fields,
  };
}

function startsWith(bytes: Uint8Array, prefix: number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/** A guess at what the bytes are instead, to make the error message concrete. */
function sniffFormat(bytes: Uint8Array): string | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'a JPEG image';
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47])) return 'a PNG image';
  if (startsWith(bytes, [0x47, 0x49, 0x46, 0x38])) return 'a GIF image';
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return 'a zip archive (unpack it first)';
  if (startsWith(bytes, [0x1f, 0x8b])) return 'a gzip archive (unpack it first)';
  const head = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, 512));
  if (head.startsWith('version https://git-lfs')) return 'a Git LFS pointer, not the model itself (run `git lfs pull`)';
  if (/^\s*</.test(head) && /html/i.test(head)) return 'an HTML page (a failed download?)';
  // eslint-disable-next-line no-control-regex
  if (!/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(head)) return 'a text file';
  return undefined;
}

function notOnnxMessage(source: string, bytes: Uint8Array, reason: string): string {
  const looksLike = bytes.length > 0 ? sniffFormat(bytes) : undefined;
  const what = looksLike ? `it looks like ${looksLike}` : reason;
  return (
    `${source} is not an ONNX model: ${what}. ` +
    'Use a .onnx file holding a whole ModelProto (for example an entry of the built-in catalogue); ' +
    'if the file was downloaded, download it again.'
  );
}

/**
 * Parses ModelProto bytes. `source` names the file in error messages.
 * Throws OnnxModelError for anything that is not a self-contained ONNX model.
 */
export function parseModel(bytes: Uint8Array, source = 'the model'): OnnxModel {
  let model: OnnxModel;
  try {
    if (bytes.length === 0) throw new NotOnnx('the file is empty');
    const fields = decodeOrExplain(bytes, 'content');
    checkWireTypes(fields, MODEL_WIRE, 'model header');
    const irVersion = getVarint(fields, MODEL.irVersion);
    if (irVersion === undefined) throw new NotOnnx('it has no ir_version field');
    const graphField = fields.find((f) => f.no === MODEL.graph);
    if (!graphField) throw new NotOnnx('it has no graph');
    const graph = parseGraph(graphField.value as Uint8Array);
    const opsetImports = opsetImportsOf(fields);
    if (opsetImports.length === 0) throw new NotOnnx('it declares no operator set (opset_import), the file may be truncated');
    const metadata = metadataOf(fields);
    model = { source, irVersion: Number(irVersion), opsetImports, metadata, graph, fields };
  } catch (e) {
    if (e instanceof NotOnnx) throw new OnnxModelError(notOnnxMessage(source, bytes, e.message));
    // A nested message (an attribute, a shape) that does not decode: damaged, not a model.
    if (e instanceof ProtobufError) {
      const reason = `part of it cannot be decoded as protobuf (${e.message}); the file may be damaged`;
      throw new OnnxModelError(notOnnxMessage(source, bytes, reason));
    }
    throw e;
  }
  const external = model.graph.initializers.find((t) => t.external);
  if (external) {
    throw new OnnxModelError(
      `${source} keeps its weights in separate files (initializer "${external.name}" has data_location=EXTERNAL), ` +
        'which tlpipe does not read. Save it as one self-contained file, e.g. in Python: ' +
        'onnx.save_model(onnx.load(path), out_path, save_as_external_data=False).',
    );
  }
  return model;
}

/** Reads and parses a model file; a missing file is an OnnxModelError too. */
export async function readModelFile(path: string): Promise<OnnxModel> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OnnxModelError(`${path} does not exist: check the model path.`);
    if (code === 'EISDIR') throw new OnnxModelError(`${path} is a folder, not an ONNX model file.`);
    throw e;
  }
  return parseModel(bytes, path);
}

// ---------------------------------------------------------------- encoding

/**
 * Writes `fields` with every field number in `replacements` swapped for the
 * given list, placed where that number first appeared (or at the end), so an
 * unchanged model encodes to the same bytes it was read from.
 */
function replaceFields(fields: readonly Field[], replacements: Map<number, EncodableField[]>): EncodableField[] {
  const out: EncodableField[] = [];
  const done = new Set<number>();
  for (const f of fields) {
    const replacement = replacements.get(f.no);
    if (!replacement) out.push(f);
    else if (!done.has(f.no)) {
      out.push(...replacement);
      done.add(f.no);
    }
  }
  for (const [no, replacement] of replacements) if (!done.has(no)) out.push(...replacement);
  return out;
}

function graphFieldsOf(g: OnnxGraph): EncodableField[] {
  // Nested, not encoded here: each element's bytes are written once, into the model's buffer.
  const message = (no: number) => (x: { fields: readonly Field[] }) => pb.nested(no, x.fields);
  return replaceFields(
    g.fields,
    new Map<number, EncodableField[]>([
      [GRAPH.node, g.nodes.map(message(GRAPH.node))],
      [
        GRAPH.name,
        g.name === (getString(g.fields, GRAPH.name) ?? '')
          ? g.fields.filter((f) => f.no === GRAPH.name)
          : [pb.string(GRAPH.name, g.name)],
      ],
      [GRAPH.initializer, g.initializers.map(message(GRAPH.initializer))],
      [GRAPH.input, [...g.inputs, ...g.initializerInputs].map(message(GRAPH.input))],
      [GRAPH.output, g.outputs.map(message(GRAPH.output))],
      [GRAPH.valueInfo, g.valueInfo.map(message(GRAPH.valueInfo))],
    ]),
  );
}

function opsetImportsOf(fields: readonly Field[]): OpsetImport[] {
  return getMessages(fields, MODEL.opsetImport).map((o) => ({
    domain: getString(o, 1) ?? '',
    version: Number(getVarint(o, 2) ?? 0n),
  }));
}

function metadataOf(fields: readonly Field[]): MetadataEntry[] {
  return getMessages(fields, MODEL.metadata).map((e) => ({ key: getString(e, 1) ?? '', value: getString(e, 2) ?? '' }));
}

/** The fields as read when `current` still equals what they say (keeps the exact bytes), else `fresh()`. */
function keepIfUnchanged<T>(fields: readonly Field[], no: number, read: T, current: T, fresh: () => Field[]): Field[] {
  return JSON.stringify(read) === JSON.stringify(current) ? fields.filter((f) => f.no === no) : fresh();
}

export function encodeModel(model: OnnxModel): Uint8Array {
  const fields = replaceFields(
    model.fields,
    new Map([
      [MODEL.irVersion, [pb.varint(MODEL.irVersion, model.irVersion)]],
      [MODEL.graph, [pb.nested(MODEL.graph, graphFieldsOf(model.graph))]],
      [
        MODEL.opsetImport,
        keepIfUnchanged(model.fields, MODEL.opsetImport, opsetImportsOf(model.fields), model.opsetImports, () =>
          model.opsetImports.map((o) =>
            pb.message(MODEL.opsetImport, [...(o.domain ? [pb.string(1, o.domain)] : []), pb.varint(2, o.version)]),
          ),
        ),
      ],
      [
        MODEL.metadata,
        keepIfUnchanged(model.fields, MODEL.metadata, metadataOf(model.fields), model.metadata, () =>
          model.metadata.map((m) => pb.message(MODEL.metadata, [pb.string(1, m.key), pb.string(2, m.value)])),
        ),
      ],
    ]),
  );
  return encodeFields(fields);
}

// ---------------------------------------------------------------- building and reading elements

export const makeNode = (spec: NodeSpec): OnnxNode => parseNode(nodeFields(spec));
export const makeInitializer = (t: TensorInit): OnnxTensor => parseTensor(tensorFields(t));
export const makeValueInfo = (v: ValueSpec): OnnxValueInfo => parseValueInfo(valueInfoFields(v));

export function getAttribute(node: OnnxNode, name: string): OnnxAttribute | undefined {
  return node.attributes.find((a) => a.name === name);
}

export function intAttribute(node: OnnxNode, name: string): number | undefined {
  const a = getAttribute(node, name);
  return a?.type === 'int' ? a.value : undefined;
}

export function intsAttribute(node: OnnxNode, name: string): number[] | undefined {
  const a = getAttribute(node, name);
  return a?.type === 'ints' ? a.value : undefined;
}

const RAW_READERS: Record<string, [number, (v: DataView, at: number) => number]> = {
  float32: [4, (v, at) => v.getFloat32(at, true)],
  float64: [8, (v, at) => v.getFloat64(at, true)],
  int8: [1, (v, at) => v.getInt8(at)],
  uint8: [1, (v, at) => v.getUint8(at)],
  bool: [1, (v, at) => v.getUint8(at)],
  int16: [2, (v, at) => v.getInt16(at, true)],
  uint16: [2, (v, at) => v.getUint16(at, true)],
  int32: [4, (v, at) => v.getInt32(at, true)],
  uint32: [4, (v, at) => v.getUint32(at, true)],
  int64: [8, (v, at) => Number(v.getBigInt64(at, true))],
};

/**
 * A tensor's values as numbers (for small tensors: scales, zero points, shapes).
 * Reads raw_data or the typed repeated fields, whichever the writer used.
 */
export function tensorValues(t: OnnxTensor): number[] {
  const rawField = t.fields.find((f) => f.no === TENSOR.rawData);
  if (rawField && rawField.wire === WireType.Bytes) {
    const raw = rawField.value;
    const reader = RAW_READERS[t.elemType];
    if (!reader) throw new OnnxModelError(`tensor "${t.name}" has elements of type ${t.elemType}, which cannot be read here.`);
    const [size, read] = reader;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: number[] = [];
    for (let at = 0; at + size <= raw.byteLength; at += size) out.push(read(view, at));
    return out;
  }
  switch (t.elemType) {
    case 'float32':
      return readFloats(t.fields, TENSOR.floatData);
    case 'float64':
      return t.fields
        .flatMap((f) => (f.no === TENSOR.doubleData && f.wire !== WireType.Varint ? [f.value] : []))
        .flatMap((bytes) => {
          const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          return Array.from({ length: bytes.byteLength / 8 }, (_, i) => v.getFloat64(i * 8, true));
        });
    case 'int64':
      return getInt64s(t.fields, TENSOR.int64Data).map(Number);
    default:
      // int32_data carries every integer type of 32 bits or fewer, and bool.
      return getInt64s(t.fields, TENSOR.int32Data).map(Number);
  }
}

/** The version of the default ONNX operator set the model imports (0 when none). */
export function defaultOpset(model: OnnxModel): number {
  return model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
}

/** The producer of each tensor name, and all the names the graph defines. */
export function producers(graph: OnnxGraph): Map<string, OnnxNode> {
  const byOutput = new Map<string, OnnxNode>();
  for (const node of graph.nodes) for (const o of node.outputs) if (o) byOutput.set(o, node);
  return byOutput;
}

/** A short label for a node in messages: `Reshape "Reshape_103"`. */
export function describeNode(node: OnnxNode): string {
  return node.name ? `${node.opType} "${node.name}"` : node.opType;
}

/** Tensor names used inside a node's subgraphs (If/Loop/Scan bodies), which may come from the outer graph. */
export function subgraphReferences(node: OnnxNode): string[] {
  if (!node.attributes.some((a) => a.type === 'graph' || a.type === 'graphs')) return [];
  const names: string[] = [];
  const visit = (graphBytes: Uint8Array) => {
    const g = decodeFields(graphBytes);
    for (const nodeFieldsList of getMessages(g, GRAPH.node)) {
      names.push(...getStrings(nodeFieldsList, NODE.input));
      for (const a of getMessages(nodeFieldsList, NODE.attribute)) {
        for (const f of a) if ((f.no === 6 || f.no === 11) && f.wire === WireType.Bytes) visit(f.value);
      }
    }
  };
  for (const a of getMessages(node.fields, NODE.attribute)) {
    for (const f of a) if ((f.no === 6 || f.no === 11) && f.wire === WireType.Bytes) visit(f.value);
  }
  return names;
}
