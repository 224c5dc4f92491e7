// Turns an image classifier into a fixed feature extractor: the graph is cut
// before its classification head, and its single output becomes the flat
// float32 feature vector [N, F] that a new head is trained on.
import type { InferenceSession } from 'onnxruntime-node';
import { type NodeSpec, attr } from './builder.js';
import {
  type OnnxModel,
  type OnnxNode,
  OnnxModelError,
  defaultOpset,
  describeNode,
  encodeModel,
  makeNode,
  makeValueInfo,
  parseModel,
} from './model.js';
import { type ImageInput, describeImageInput } from './inspect.js';
import { findClassifierHead } from './head.js';
import { quantizationOf } from './quantization.js';
import { pruneUnreachable } from './prune.js';
import { ShapeFacts } from './shapes.js';
import { didYouMean, uniqueName } from './names.js';

export interface CutOptions {
  /** Cut at this tensor instead of before the detected classification head. */
  tensor?: string;
  /** Names the model in messages (a file path, a catalogue name). */
  source?: string;
}

export interface FeatureModel {
  /** The feature extractor, as ONNX bytes. */
  bytes: Uint8Array;
  /** Name of its single output, float32 [N, featureWidth]. */
  featureName: string;
  featureWidth: number;
  /** Where the model was cut, for messages. */
  cutAfter: string;
  /** How many nodes of the original graph were removed. */
  removedNodes: number;
}

const FEATURE_OUTPUT = 'features';
/** Dynamic sizes are given these values when the model has to be run once to learn F. */
const PROBE_BATCH = 1;
const PROBE_SIDE = 224;

/** Tensor and node names in use, so that added ones never collide. */
function namesInUse(model: OnnxModel): Set<string> {
  const g = model.graph;
  return new Set([
    ...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]),
    ...g.initializers.map((t) => t.name),
    ...g.inputs.map((v) => v.name),
    ...g.outputs.map((v) => v.name),
  ]);
}

/** The tensor a user named, checked, with suggestions when it does not exist. */
function namedCut(model: OnnxModel, tensor: string, producerOf: (name: string) => OnnxNode | undefined): OnnxNode {
  const producer = producerOf(tensor);
  if (producer) return producer;
  if (model.graph.inputs.some((i) => i.name === tensor)) {
    throw new OnnxModelError(
      `cannot cut ${model.source} at "${tensor}": that is the model's input. Name a tensor computed by the network.`,
    );
  }
  const produced = model.graph.nodes.flatMap((n) => n.outputs.filter(Boolean));
  const lastFew = produced.slice(-6).map((n) => `"${n}"`).join(', ');
  throw new OnnxModelError(
    `${model.source} has no tensor named "${tensor}".${didYouMean(tensor, produced)} ` +
      `Its last tensors are ${lastFew} (${produced.length} in all; a viewer such as Netron shows every name).`,
  );
}

function opsetAtLeast(model: OnnxModel, version: number, why: string): void {
  const opset = defaultOpset(model);
  if (opset < version) {
    throw new OnnxModelError(
      `${model.source} uses ONNX opset ${opset}, but ${why} needs opset ${version} or later; ` +
        'convert the model to a newer opset (onnx.version_converter) first.',
    );
  }
}

/** Learns the feature width by running the cut model once on a zero image. */
async function probeFeatureWidth(bytes: Uint8Array, image: ImageInput, featureName: string, where: string): Promise<number> {
  const h = image.height ?? PROBE_SIDE;
  const w = image.width ?? PROBE_SIDE;
  const n = image.batch ?? PROBE_BATCH;
  const dims = image.layout === 'NCHW' ? [n, 3, h, w] : [n, h, w, 3];
  let session: InferenceSession | undefined;
  try {
    // Loaded only here: most cuts never need the runtime.
    const [ort, runtime] = await Promise.all([import('onnxruntime-node'), import('./runtime.js')]);
    session = await runtime.createSession(bytes, { device: 'cpu' }, where);
    const input = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
    const result = await session.run({ [image.name]: input });
    const output = result[featureName]!;
    if (output.type !== 'float32' || output.dims.length !== 2) {
      throw new OnnxModelError(
        `cutting ${where} gives ${output.type} features of shape [${output.dims.join(', ')}], not float32 [N, F]: choose another tensor.`,
      );
    }
    return output.dims[1]!;
  } catch (e) {
    if (e instanceof OnnxModelError) throw e;
    throw new OnnxModelError(
      `cutting ${where} gives a model onnxruntime cannot run (${(e as Error).message.split('\n')[0]}); choose another tensor.`,
    );
  } finally {
    await session?.release();
  }
}

interface AppendedStep {
  op: string;
  label: string;
  extraInputs: string[];
  attrs?: NodeSpec['attrs'];
}

export async function cutAtFeatures(modelBytes: Uint8Array, options: CutOptions = {}): Promise<FeatureModel> {
  const model = parseModel(modelBytes, options.source);
  const image = describeImageInput(model);
  const shapes = new ShapeFacts(model.graph);
  const head = findClassifierHead(model, image.layout, shapes);

  let cutTensor: string;
  let cutAfter: string;
  if (options.tensor !== undefined) {
    const producer = namedCut(model, options.tensor, (name) => shapes.producer(name));
    cutTensor = options.tensor;
    cutAfter = `tensor "${cutTensor}" (output of ${describeNode(producer)})`;
  } else {
    if (!head) {
      throw new OnnxModelError(
        `could not find the classification head of ${model.source}: no Gemm, MatMul or QLinearMatMul follows a global ` +
          'pooling (GlobalAveragePool, ReduceMean over the spatial axes...). Name the feature tensor to cut at ' +
          '(the `tensor` option); a viewer such as Netron shows the names.',
      );
    }
    cutTensor = head.featureTensor;
    const producer = shapes.producer(cutTensor);
    cutAfter =
      `tensor "${cutTensor}"${producer ? ` (output of ${describeNode(producer)})` : ''}, ` +
      `before the classifier ${describeNode(head.dense)}`;
  }

  // What to append so the output is float32 [N, F]: quantized features
  // (uint8/int8 from QLinear operators) go back to float, and a map is flattened.
  const steps: AppendedStep[] = [];
  const quantization = quantizationOf(model.graph, cutTensor);
  if (quantization) {
    opsetAtLeast(model, 10, 'dequantizing its quantized features');
    const params = quantization.zeroPoint ? [quantization.scale, quantization.zeroPoint] : [quantization.scale];
    steps.push({ op: 'DequantizeLinear', label: 'dequantized', extraInputs: params });
  }
  const atHead = head !== undefined && head.featureTensor === cutTensor;
  const rank = atHead && head.featuresAre2D ? 2 : shapes.rank(cutTensor);
  if (rank !== 2) steps.push({ op: 'Flatten', label: 'flat', extraInputs: [], attrs: { axis: attr.int(1) } });
  // The output always gets the same plain name, whatever the backbone called the tensor.
  if (steps.length === 0) steps.push({ op: 'Identity', label: 'identity', extraInputs: [] });

  const taken = namesInUse(model);
  const featureName = uniqueName(FEATURE_OUTPUT, taken);
  let current = cutTensor;
  steps.forEach((step, i) => {
    const output = i === steps.length - 1 ? featureName : uniqueName(`${cutTensor}_${step.label}`, taken);
    model.graph.nodes.push(
      makeNode({
        op: step.op,
        name: uniqueName(`tlpipe_features_${step.label}`, taken),
        inputs: [current, ...step.extraInputs],
        outputs: [output],
        attrs: step.attrs,
      }),
    );
    current = output;
  });

  // F statically when possible: the head's weight (for a 2-D input), else the declared shape.
  const declared = shapes.declaredDims(cutTensor);
  const declaredWidth =
    declared && declared.length >= 2 && declared.slice(1).every((d) => typeof d === 'number')
      ? (declared.slice(1) as number[]).reduce((a, b) => a * b, 1)
      : null;
  const widthFromHead = atHead && rank === 2 ? head.weightInFeatures : null;
  let featureWidth = widthFromHead ?? declaredWidth;

  const batchDim = image.batchDim ?? 'batch';
  const setOutput = (width: number | string) => {
    model.graph.outputs = [makeValueInfo({ name: featureName, type: 'float32', dims: [batchDim, width] })];
  };
  setOutput(featureWidth ?? 'features');
  const removedNodes = pruneUnreachable(model.graph);
  if (!model.graph.inputs.some((i) => i.name === image.name)) {
    throw new OnnxModelError(
      `cutting ${model.source} at ${cutAfter} leaves nothing that depends on the image input; choose another tensor.`,
    );
  }
  if (featureWidth === null) {
    featureWidth = await probeFeatureWidth(encodeModel(model), image, featureName, `${model.source} at ${cutAfter}`);
    setOutput(featureWidth);
  }
  return { bytes: encodeModel(model), featureName, featureWidth, cutAfter, removedNodes };
}
