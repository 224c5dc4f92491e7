// Reading and writing ModelProto bytes: the parsed view, faithful
// re-encoding, and clear errors for files that are not ONNX models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { attr, buildModel, graphFields, metadataField, nodeFields, tensorFields, type ModelSpec } from '../src/onnx/builder.js';
import { decodeFields, encodeFields, pb } from '../src/onnx/protobuf.js';
import {
  OnnxModelError,
  defaultOpset,
  encodeModel,
  makeNode,
  parseModel,
  readModelFile,
  tensorValues,
} from '../src/onnx/model.js';
import { fixture, needsFixtures } from './support/fixtures.js';
import { removeDir, tempDir } from './support/tmp.js';

const HINT =
  'Use a .onnx file holding a whole ModelProto (for example an entry of the built-in catalogue); ' +
  'if the file was downloaded, download it again.';

const smallModel: ModelSpec = {
  opset: 13,
  nodes: [
    { op: 'Conv', name: 'conv', inputs: ['image', 'w'], outputs: ['c'], attrs: { kernel_shape: attr.ints([1, 1]) } },
    { op: 'LeakyRelu', name: 'act', inputs: ['c'], outputs: ['a'], attrs: { alpha: attr.float(0.25) } },
    { op: 'GlobalAveragePool', name: 'pool', inputs: ['a'], outputs: ['p'] },
    { op: 'Flatten', name: 'flat', inputs: ['p'], outputs: ['f'], attrs: { axis: attr.int(1) } },
  ],
  inputs: [{ name: 'image', type: 'float32', dims: ['N', 3, 8, 8] }],
  outputs: [{ name: 'f', type: 'float32', dims: ['N', 2] }],
  initializers: [{ name: 'w', type: 'float32', dims: [2, 3, 1, 1], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
  metadata: { author: 'test' },
};

/** The small model with fields the parsed view does not model: doc strings and an unknown field 99. */
function modelWithExtras(): Uint8Array {
  const graph = graphFields(smallModel);
  graph[0] = pb.message(1, [...nodeFields(smallModel.nodes[0]!), pb.string(6, 'node doc')]);
  graph.push(pb.string(10, 'graph doc'));
  return encodeFields([
    pb.varint(1, 8),
    pb.string(2, 'test'),
    pb.string(6, 'model doc'),
    pb.message(7, graph),
    pb.message(8, [pb.string(1, ''), pb.varint(2, 13)]),
    metadataField('author', 'test'),
    pb.varint(99, 42),
  ]);
}

test('parses nodes, attributes, initializers, inputs, outputs, opsets and metadata', () => {
  const model = parseModel(buildModel(smallModel), 'small.onnx');
  const g = model.graph;
  assert.equal(model.source, 'small.onnx');
  assert.deepEqual(
    g.nodes.map((n) => [n.opType, n.name, n.inputs, n.outputs]),
    [
      ['Conv', 'conv', ['image', 'w'], ['c']],
      ['LeakyRelu', 'act', ['c'], ['a']],
      ['GlobalAveragePool', 'pool', ['a'], ['p']],
      ['Flatten', 'flat', ['p'], ['f']],
    ],
  );
  assert.deepEqual(g.nodes[0]!.attributes.map(({ name, type, value }) => ({ name, type, value })), [
    { name: 'kernel_shape', type: 'ints', value: [1, 1] },
  ]);
  assert.deepEqual(g.nodes[1]!.attributes.map(({ name, type, value }) => ({ name, type, value })), [
    { name: 'alpha', type: 'float', value: 0.25 },
  ]);
  assert.deepEqual(g.nodes[3]!.attributes.map(({ name, type, value }) => ({ name, type, value })), [
    { name: 'axis', type: 'int', value: 1 },
  ]);
  assert.deepEqual(g.initializers.map((t) => [t.name, t.elemType, t.dims]), [['w', 'float32', [2, 3, 1, 1]]]);
  assert.deepEqual(tensorValues(g.initializers[0]!), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(g.inputs.map((v) => [v.name, v.elemType, v.dims]), [['image', 'float32', ['N', 3, 8, 8]]]);
  assert.deepEqual(g.outputs.map((v) => [v.name, v.elemType, v.dims]), [['f', 'float32', ['N', 2]]]);
  assert.deepEqual(model.opsetImports, [{ domain: '', version: 13 }]);
  assert.equal(defaultOpset(model), 13);
  assert.deepEqual(model.metadata, [{ key: 'author', value: 'test' }]);
});

test('graph inputs that name an initializer (IR < 4 style) are not counted as inputs', () => {
  const spec: ModelSpec = {
    ...smallModel,
    irVersion: 3,
    inputs: [...smallModel.inputs, { name: 'w', type: 'float32', dims: [2, 3, 1, 1] }],
  };
  const model = parseModel(buildModel(spec));
  assert.deepEqual(model.graph.inputs.map((v) => v.name), ['image']);
  assert.deepEqual(model.graph.initializerInputs.map((v) => v.name), ['w']);
  // ...and they are written back.
  assert.deepEqual(parseModel(encodeModel(model)).graph.initializerInputs.map((v) => v.name), ['w']);
});

test('an unchanged model encodes to exactly the bytes it was read from, unknown fields included', () => {
  const bytes = modelWithExtras();
  assert.deepEqual(encodeModel(parseModel(bytes)), bytes);
});

test('an edited model keeps the fields it does not model', () => {
  const model = parseModel(modelWithExtras());
  model.graph.nodes = model.graph.nodes.filter((n) => n.opType !== 'Flatten');
  model.graph.nodes.push(makeNode({ op: 'Flatten', name: 'flat2', inputs: ['p'], outputs: ['f'], attrs: { axis: attr.int(1) } }));
  model.metadata.push({ key: 'labels', value: '["a","b"]' });
  const edited = parseModel(encodeModel(model));
  assert.deepEqual(edited.graph.nodes.map((n) => n.name), ['conv', 'act', 'pool', 'flat2']);
  assert.deepEqual(edited.metadata.at(-1), { key: 'labels', value: '["a","b"]' });
  const text = (fields: readonly { no: number; value: unknown }[], no: number) =>
    fields.filter((f) => f.no === no).map((f) => new TextDecoder().decode(f.value as Uint8Array));
  assert.deepEqual(text(edited.fields, 6), ['model doc']);
  assert.ok(edited.fields.some((f) => f.no === 99 && f.value === 42n));
  assert.deepEqual(text(edited.graph.fields, 10), ['graph doc']);
  assert.deepEqual(text(edited.graph.nodes[0]!.fields, 6), ['node doc']);
});

test('reads typed (non-raw) tensor data and int64 raw data', () => {
  const typed = parseModel(
    encodeFields([
      ...decodeFields(buildModel({ ...smallModel, initializers: [] })).filter((f) => f.no !== 7),
      pb.message(7, [
        ...graphFields({ ...smallModel, initializers: [] }),
        pb.message(5, [pb.varint(1, 3), pb.varint(2, 1), pb.string(8, 'w'), pb.float(4, 0.5), pb.float(4, -1), pb.float(4, 2)]),
        pb.message(5, [pb.varint(2, 7), pb.string(8, 'shape'), pb.packedVarints(7, [-1, 4])]),
        pb.message(5, tensorFields({ name: 'raw64', type: 'int64', dims: [2], data: new BigInt64Array([-3n, 7n]) })),
      ]),
    ]),
  );
  const values = Object.fromEntries(typed.graph.initializers.map((t) => [t.name, tensorValues(t)]));
  assert.deepEqual(values, { w: [0.5, -1, 2], shape: [-1, 4], raw64: [-3, 7] });
});

async function parseFileError(content: Uint8Array | string): Promise<{ file: string; message: string }> {
  const dir = await tempDir({ 'model.onnx': content });
  const file = path.join(dir, 'model.onnx');
  try {
    await readModelFile(file);
    assert.fail('expected an OnnxModelError');
  } catch (e) {
    assert.ok(e instanceof OnnxModelError, `expected an OnnxModelError, got ${String(e)}`);
    return { file, message: e.message };
  } finally {
    await removeDir(dir);
  }
}

test('an empty file is not an ONNX model', async () => {
  const { file, message } = await parseFileError(new Uint8Array());
  assert.equal(message, `${file} is not an ONNX model: the file is empty. ${HINT}`);
});

test('a text file is not an ONNX model', async () => {
  const { file, message } = await parseFileError('name: my pipeline\nsteps: []\n');
  assert.equal(message, `${file} is not an ONNX model: it looks like a text file. ${HINT}`);
});

test('a JPEG is not an ONNX model', async () => {
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00]);
  const { file, message } = await parseFileError(jpeg);
  assert.equal(message, `${file} is not an ONNX model: it looks like a JPEG image. ${HINT}`);
});

test('bytes that are not protobuf are not an ONNX model', async () => {
  const { file, message } = await parseFileError(Uint8Array.from([0x0a, 0xff, 0x01, 0x00, 0x07]));
  assert.equal(
    message,
    `${file} is not an ONNX model: its content cannot be decoded as protobuf (truncated length-delimited field); ` +
      `the file may be truncated. ${HINT}`,
  );
});

test('a protobuf message without a graph is not an ONNX model', async () => {
  const { file, message } = await parseFileError(encodeFields([pb.varint(1, 8), pb.string(2, 'x')]));
  assert.equal(message, `${file} is not an ONNX model: it has no graph. ${HINT}`);
});

test('a truncated model is not an ONNX model', async () => {
  const bytes = buildModel(smallModel);
  const { file, message } = await parseFileError(bytes.subarray(0, Math.floor(bytes.length / 2)));
  assert.equal(
    message,
    `${file} is not an ONNX model: its content cannot be decoded as protobuf (truncated length-delimited field); ` +
      `the file may be truncated. ${HINT}`,
  );
});

test('a damaged message inside the graph is reported, not thrown as a protobuf error', () => {
  const brokenNode = pb.message(1, [pb.string(4, 'Relu'), pb.bytes(5, Uint8Array.from([0x0a, 0xff]))]);
  const bytes = encodeFields([
    pb.varint(1, 8),
    pb.message(7, [brokenNode, ...graphFields(smallModel)]),
    pb.message(8, [pb.varint(2, 13)]),
  ]);
  assert.throws(
    () => parseModel(bytes, 'damaged.onnx'),
    new OnnxModelError(
      'damaged.onnx is not an ONNX model: part of it cannot be decoded as protobuf (truncated varint); ' +
        `the file may be damaged. ${HINT}`,
    ),
  );
});

test('random bytes and truncations only ever give an OnnxModelError', () => {
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const model = buildModel(smallModel);
  const attempts = [
    ...Array.from({ length: 200 }, () => Uint8Array.from({ length: 1 + Math.floor(random() * 300) }, () => random() * 256)),
    ...Array.from({ length: model.length - 1 }, (_, n) => model.subarray(0, n)),
  ];
  for (const bytes of attempts) {
    try {
      parseModel(bytes);
    } catch (e) {
      assert.ok(e instanceof OnnxModelError, `unexpected ${String(e)}`);
    }
  }
});

test('a missing file says so', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'absent.onnx');
  await assert.rejects(readModelFile(file), new OnnxModelError(`${file} does not exist: check the model path.`));
  await removeDir(dir);
});

test('weights in external files are rejected with what to do', () => {
  const external = pb.message(5, [
    pb.varint(1, 2),
    pb.varint(2, 1),
    pb.string(8, 'w'),
    pb.message(13, [pb.string(1, 'location'), pb.string(2, 'weights.bin')]),
    pb.varint(14, 1),
  ]);
  const bytes = encodeFields([
    pb.varint(1, 8),
    pb.message(7, [...graphFields({ ...smallModel, initializers: [] }), external]),
    pb.message(8, [pb.varint(2, 13)]),
  ]);
  assert.throws(
    () => parseModel(bytes, 'big.onnx'),
    new OnnxModelError(
      'big.onnx keeps its weights in separate files (initializer "w" has data_location=EXTERNAL), which tlpipe does not read. ' +
        'Save it as one self-contained file, e.g. in Python: onnx.save_model(onnx.load(path), out_path, save_as_external_data=False).',
    ),
  );
});

test('the int8 MobileNetV2 fixture parses and re-encodes byte for byte', { skip: needsFixtures }, async () => {
  const bytes = await readFile(fixture('models', 'mobilenetv2-12-int8.onnx'));
  const model = parseModel(bytes);
  assert.equal(model.graph.nodes.length, 73);
  assert.equal(defaultOpset(model), 12);
  assert.deepEqual(model.graph.inputs.map((v) => [v.name, v.dims]), [['input', ['batch_size', 3, 224, 224]]]);
  assert.deepEqual(encodeModel(model), new Uint8Array(bytes));
  const truncated = bytes.subarray(0, bytes.length - 1000);
  assert.throws(() => parseModel(truncated, 'cut.onnx'), /^OnnxModelError: cut\.onnx is not an ONNX model: its content cannot be decoded/);
});
