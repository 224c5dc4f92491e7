// Joins a cut backbone and a trained head into one ONNX classifier:
// image → backbone → features → (Gemm → ReLU)* → Gemm → Softmax → probabilities,
// with the class labels in the model's metadata for whoever predicts with it.
import { attr } from './builder.js';
import {
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  OnnxModelError,
  defaultOpset,
  encodeModel,
  makeInitializer,
  makeNode,
  makeValueInfo,
  parseModel,
} from './model.js';
import { formatDims } from './inspect.js';
import { uniqueName } from './names.js';

/** One fully connected layer, stored like PyTorch's nn.Linear: weight is row-major [out, in]. */
export interface DenseLayer {
  weight: Float32Array;
  bias: Float32Array;
  inFeatures: number;
  outFeatures: number;
}

/** A trained head: dense layers with ReLU between them (dropout is training-only, so absent). */
export interface HeadWeights {
  layers: DenseLayer[];
}

export interface MergeOptions {
  /** Class names, in the order of the head's outputs. */
  labels: string[];
  /** Names the backbone in messages. */
  source?: string;
  /** More metadata_props entries (e.g. the preprocessing a predictor must apply). */
  metadata?: Record<string, string>;
}

export const PROBABILITIES_OUTPUT = 'probabilities';
/** metadata_props key holding the labels as a JSON array. */
export const LABELS_METADATA_KEY = 'labels';

/** Gemm broadcasts its bias without the old `broadcast` attribute from opset 7 on. */
const MIN_OPSET = 7;

function checkHead(head: HeadWeights, featureWidth: number, labels: string[]): void {
  const fail = (why: string) => new OnnxModelError(`the trained head does not fit the backbone: ${why}.`);
  if (head.layers.length === 0) throw fail('it has no layers');
  head.layers.forEach((layer, i) => {
    const which = `layer ${i + 1} of ${head.layers.length}`;
    const expectedIn = i === 0 ? featureWidth : head.layers[i - 1]!.outFeatures;
    if (layer.inFeatures !== expectedIn) {
      throw fail(`${which} takes ${layer.inFeatures} inputs but receives ${expectedIn}` + (i === 0 ? ' backbone features' : ''));
    }
    if (layer.weight.length !== layer.inFeatures * layer.outFeatures) {
      throw fail(`${which} has ${layer.weight.length} weights, expected ${layer.outFeatures}×${layer.inFeatures}`);
    }
    if (layer.bias.length !== layer.outFeatures) throw fail(`${which} has ${layer.bias.length} biases, expected ${layer.outFeatures}`);
  });
  const classes = head.layers[head.layers.length - 1]!.outFeatures;
  if (labels.length !== classes) throw fail(`it outputs ${classes} classes but ${labels.length} labels were given`);
  if (classes < 2) throw fail('a classifier needs at least 2 classes');
  const duplicate = labels.find((l, i) => labels.indexOf(l) !== i);
  if (duplicate !== undefined) throw fail(`the label "${duplicate}" appears twice`);
}

/** The backbone's single output, which must be float32 [N, F] with F known. */
function featureOutput(model: OnnxModel): { name: string; batchDim: number | string; width: number } {
  const outputs = model.graph.outputs;
  const expectation = 'a feature extractor made by cutAtFeatures has one float32 output [N, F]';
  if (outputs.length !== 1) {
    throw new OnnxModelError(`${model.source} has ${outputs.length} outputs, not 1: ${expectation}.`);
  }
  const out = outputs[0]!;
  const width = out.dims?.[1];
  if (out.elemType !== 'float32' || out.dims?.length !== 2 || typeof width !== 'number') {
    throw new OnnxModelError(
      `${model.source} outputs "${out.name}" as ${out.elemType ?? 'a non-tensor'} ${formatDims(out.dims)}: ${expectation}.`,
    );
  }
  return { name: out.name, batchDim: out.dims[0] ?? 'batch', width };
}

export function mergeBackboneAndHead(featureModelBytes: Uint8Array, head: HeadWeights, options: MergeOptions): Uint8Array {
  const model = parseModel(featureModelBytes, options.source ?? 'the feature extractor');
  const opset = defaultOpset(model);
  if (opset < MIN_OPSET) {
    throw new OnnxModelError(
      `${model.source} uses ONNX opset ${opset}; the merged classifier needs opset ${MIN_OPSET} or later ` +
        '(convert the backbone with onnx.version_converter first).',
    );
  }
  const features = featureOutput(model);
  checkHead(head, features.width, options.labels);

  const g = model.graph;
  const taken = new Set([
    ...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]),
    ...g.initializers.map((t) => t.name),
    ...g.inputs.map((v) => v.name),
  ]);
  // Reserved first so the output keeps its documented name.
  const probabilities = uniqueName(PROBABILITIES_OUTPUT, taken);
  const nodes: OnnxNode[] = [];
  const weights: OnnxTensor[] = [];
  let current = features.name;
  head.layers.forEach((layer, i) => {
    const weight = uniqueName(`head.${i}.weight`, taken);
    const bias = uniqueName(`head.${i}.bias`, taken);
    weights.push(
      makeInitializer({ name: weight, type: 'float32', dims: [layer.outFeatures, layer.inFeatures], data: layer.weight }),
      makeInitializer({ name: bias, type: 'float32', dims: [layer.outFeatures], data: layer.bias }),
    );
    const isLast = i === head.layers.length - 1;
    const linear = uniqueName(isLast ? 'logits' : `head.${i}.linear`, taken);
    // transB=1: y = x·Wᵀ + b with W stored [out, in], as nn.Linear keeps it.
    nodes.push(
      makeNode({
        op: 'Gemm',
        name: uniqueName(`head.${i}.gemm`, taken),
        inputs: [current, weight, bias],
        outputs: [linear],
        attrs: { transB: attr.int(1) },
      }),
    );
    current = linear;
    if (!isLast) {
      const activated = uniqueName(`head.${i}.relu`, taken);
      nodes.push(makeNode({ op: 'Relu', name: activated, inputs: [current], outputs: [activated] }));
      current = activated;
    }
  });
  // Before opset 13 Softmax flattens to 2-D around `axis`; on a 2-D input
  // with axis=1 that is the same as the per-row softmax of opset 13.
  nodes.push(
    makeNode({
      op: 'Softmax',
      name: uniqueName('head.softmax', taken),
      inputs: [current],
      outputs: [probabilities],
      attrs: { axis: attr.int(1) },
    }),
  );

  g.nodes.push(...nodes);
  g.initializers.push(...weights);
  // IR versions before 4 require every initializer to be listed as a graph input too.
  if (model.irVersion < 4) {
    g.initializerInputs.push(
      ...weights.map((t) => makeValueInfo({ name: t.name, type: 'float32', dims: [...t.dims] })),
    );
  }
  const classes = options.labels.length;
  g.outputs = [makeValueInfo({ name: probabilities, type: 'float32', dims: [features.batchDim, classes] })];
  const added = { [LABELS_METADATA_KEY]: JSON.stringify(options.labels), ...options.metadata };
  model.metadata = [
    ...model.metadata.filter((m) => !(m.key in added)),
    ...Object.entries(added).map(([key, value]) => ({ key, value })),
  ];
  return encodeModel(model);
}

/** The labels a merged classifier carries, or undefined when it has none. */
export function readLabels(model: OnnxModel): string[] | undefined {
  const entry = model.metadata.find((m) => m.key === LABELS_METADATA_KEY);
  if (!entry) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(entry.value);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((l) => typeof l === 'string')) {
    throw new OnnxModelError(`${model.source} has a "${LABELS_METADATA_KEY}" metadata entry that is not a JSON array of strings.`);
  }
  return parsed;
}
