// Describing a model's image input and outputs, and refusing models that do not take images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { buildModel, type ElemType } from '../src/onnx/builder.js';
import { OnnxModelError, parseModel } from '../src/onnx/model.js';
import { describeImageInput, describeModel, describeOutputs } from '../src/onnx/inspect.js';
import { fixture, needsFixtures } from './support/fixtures.js';

/** An identity-like model whose inputs have the given shapes. */
function modelTaking(inputs: { name: string; dims: (number | string)[]; type?: ElemType }[], opset = 13) {
  return parseModel(
    buildModel({
      opset,
      nodes: [{ op: 'Identity', inputs: [inputs[0]!.name], outputs: ['out'] }],
      inputs: inputs.map((i) => ({ name: i.name, type: i.type ?? 'float32', dims: i.dims })),
      outputs: [{ name: 'out', type: inputs[0]!.type ?? 'float32', dims: inputs[0]!.dims }],
    }),
    'm.onnx',
  );
}

const NOT_IMAGE_HINT =
  'An image input is a float32 tensor [N, 3, H, W] (NCHW) or [N, H, W, 3] (NHWC); use an image classification model.';

test('an NCHW input with a dynamic batch', () => {
  assert.deepEqual(describeImageInput(modelTaking([{ name: 'data', dims: ['N', 3, 224, 224] }])), {
    name: 'data',
    layout: 'NCHW',
    channels: 3,
    height: 224,
    width: 224,
    batch: null,
    batchDim: 'N',
    elemType: 'float32',
  });
});

test('an NHWC input with a fixed batch (as efficientnet-lite4)', () => {
  const input = describeImageInput(modelTaking([{ name: 'images:0', dims: [1, 224, 224, 3] }]));
  assert.equal(input.layout, 'NHWC');
  assert.equal(input.batch, 1);
  assert.equal(input.batchDim, 1);
  assert.deepEqual([input.height, input.width], [224, 224]);
});

test('dynamic height and width are null', () => {
  const input = describeImageInput(modelTaking([{ name: 'x', dims: ['b', 3, 'h', 'w'] }]));
  assert.deepEqual([input.layout, input.height, input.width, input.batch], ['NCHW', null, null, null]);
});

test('outputs and opset are described too', () => {
  const model = modelTaking([{ name: 'x', dims: ['b', 3, 8, 8] }], 11);
  assert.deepEqual(describeOutputs(model), [{ name: 'out', elemType: 'float32', dims: ['b', 3, 8, 8] }]);
  assert.equal(describeModel(model).opset, 11);
});

test('a rank-2 input is not an image', () => {
  assert.throws(
    () => describeImageInput(modelTaking([{ name: 'tokens', dims: ['batch', 128] }])),
    new OnnxModelError(
      `m.onnx does not take an image: its input "tokens" has shape [batch, 128] (rank 2, not 4). ${NOT_IMAGE_HINT}`,
    ),
  );
});

test('a 4-D input without 3 colour channels is not an image', () => {
  assert.throws(
    () => describeImageInput(modelTaking([{ name: 'x', dims: ['N', 1, 28, 28] }])),
    new OnnxModelError(
      `m.onnx does not take an image: its input "x" has shape [N, 1, 28, 28], with no axis of 3 colour channels ` +
        `at position 1 or 3. ${NOT_IMAGE_HINT}`,
    ),
  );
});

test('a uint8 input is refused', () => {
  assert.throws(
    () => describeImageInput(modelTaking([{ name: 'x', dims: ['N', 3, 224, 224], type: 'uint8' }])),
    new OnnxModelError(`m.onnx does not take an image: its input "x" holds uint8 values, not float32. ${NOT_IMAGE_HINT}`),
  );
});

test('a model with two inputs is refused', () => {
  assert.throws(
    () =>
      describeImageInput(
        modelTaking([
          { name: 'image', dims: ['N', 3, 224, 224] },
          { name: 'mask', dims: ['N', 1, 224, 224] },
        ]),
      ),
    new OnnxModelError('m.onnx takes 2 inputs ("image", "mask"); tlpipe needs an image classifier with a single image input.'),
  );
});

test('the int8 MobileNetV2 fixture', { skip: needsFixtures }, async () => {
  const model = parseModel(await readFile(fixture('models', 'mobilenetv2-12-int8.onnx')));
  const description = describeModel(model);
  assert.deepEqual(description.input, {
    name: 'input',
    layout: 'NCHW',
    channels: 3,
    height: 224,
    width: 224,
    batch: null,
    batchDim: 'batch_size',
    elemType: 'float32',
  });
  assert.deepEqual(description.outputs, [{ name: 'output', elemType: 'float32', dims: ['batch_size', 1000] }]);
  assert.equal(description.opset, 12);
});
