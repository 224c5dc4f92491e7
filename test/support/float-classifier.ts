// A small float32 image classifier in the shape of a torchvision export
// (Conv → BatchNormalization → Relu, a residual Add, GlobalAveragePool →
// Flatten → Gemm), so that pipelines with backbone.quantize run without a
// 100 MB ResNet-50. Deterministic weights from a seed.
import { attr, buildModel } from '../../src/onnx/builder.js';
import { seededTensors } from './seeded-tensors.js';

export function floatClassifier(seed = 50, opset = 13): Uint8Array {
  const { randoms, floats } = seededTensors(seed);
  const positive = (name: string, n: number) => ({ name, type: 'float32' as const, dims: [n], data: randoms(n).map((v) => 0.5 + Math.abs(v)) });
  return buildModel({
    name: 'small-float-classifier',
    opset,
    inputs: [{ name: 'input', type: 'float32', dims: ['batch', 3, 224, 224] }],
    outputs: [{ name: 'output', type: 'float32', dims: ['batch', 10] }],
    initializers: [
      floats('stem.w', [16, 3, 7, 7]), floats('stem.b', [16]),
      positive('bn.g', 16), floats('bn.b', [16]), floats('bn.m', [16]), positive('bn.v', 16),
      floats('a.w', [16, 16, 3, 3]), floats('a.b', [16]),
      floats('fc.w', [10, 16]), floats('fc.b', [10]),
    ],
    nodes: [
      { op: 'Conv', name: 'stem', inputs: ['input', 'stem.w', 'stem.b'], outputs: ['s'], attrs: { strides: attr.ints([4, 4]), pads: attr.ints([3, 3, 3, 3]) } },
      { op: 'BatchNormalization', name: 'bn', inputs: ['s', 'bn.g', 'bn.b', 'bn.m', 'bn.v'], outputs: ['sb'] },
      { op: 'Relu', name: 'relu', inputs: ['sb'], outputs: ['sr'] },
      { op: 'MaxPool', name: 'pool', inputs: ['sr'], outputs: ['p'], attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) } },
      { op: 'Conv', name: 'a', inputs: ['p', 'a.w', 'a.b'], outputs: ['ac'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
      { op: 'Add', name: 'residual', inputs: ['ac', 'p'], outputs: ['sum'] },
      { op: 'Relu', name: 'relu2', inputs: ['sum'], outputs: ['block'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['block'], outputs: ['pooled'] },
      { op: 'Flatten', name: 'flatten', inputs: ['pooled'], outputs: ['flat'], attrs: { axis: attr.int(1) } },
      { op: 'Gemm', name: 'fc', inputs: ['flat', 'fc.w', 'fc.b'], outputs: ['output'], attrs: { transB: attr.int(1) } },
    ],
  });
}
