// ONNX graphs for the head, built in TypeScript from ordinary operators (no
// training extensions), so the same model runs on onnxruntime's CPU and CUDA
// execution providers:
//  - the training graph: one run = forward pass, class-weighted cross-entropy,
//    hand-written back-propagation and one Adam/AdamW/SGD update;
//  - the evaluation graph: forward pass, probabilities and (with labels) loss
//    terms and the count of correct predictions.
// A float64 build of the same graphs exists to check gradients tightly.
import { attr, buildModel, type AttrValue, type ElemType, type NodeSpec, type TensorInit, type ValueSpec } from '../onnx/builder.js';
import type { OptimizerConfig } from './engine.js';

export type GraphDtype = 'float32' | 'float64';

const OPSET = 17;
const BATCH = 'batch';

/** Input and output names shared by the graphs and the engine that feeds them. */
export const io = {
  features: 'features',
  labels: 'labels',
  classWeights: 'class_weights',
  dropoutMask: (hidden: number) => `dropout_mask.${hidden}`,
  weight: (layer: number) => `layer${layer}.weight`,
  bias: (layer: number) => `layer${layer}.bias`,
  next: (param: string) => `${param}.next`,
  grad: (param: string) => `${param}.grad`,
  /** Adam's first moment, or SGD's momentum buffer. */
  moment1: (param: string) => `${param}.moment1`,
  /** Adam's second moment. */
  moment2: (param: string) => `${param}.moment2`,
  loss: 'loss',
  correct: 'correct',
  logits: 'logits',
  probabilities: 'probabilities',
  predicted: 'predicted',
  lossSum: 'loss_sum',
  weightSum: 'weight_sum',
  /** Adam: lr / (1 − β1^t). */
  stepSize: 'step_size',
  /** Adam: sqrt(1 − β2^t). */
  bias2Sqrt: 'bias_correction2_sqrt',
  /** AdamW: 1 − lr·weight_decay. */
  decay: 'decay',
  lr: 'lr',
  /** SGD with momentum: 1 on the first step (buffer = gradient), then 1 − dampening. */
  momentumScale: 'momentum_scale',
} as const;

/** Records nodes with generated names for intermediate values. */
export class GraphWriter {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorInit[] = [];
  private count = 0;
  private readonly constants = new Map<string, string>();

  constructor(readonly dtype: GraphDtype) {}

  /** Adds one node and returns the name of its (single) output. */
  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>, output?: string): string {
    const out = output ?? `${op.toLowerCase()}_${this.count++}`;
    this.nodes.push({ op, inputs, outputs: [out], attrs, name: `${op}_${this.nodes.length}` });
    return out;
  }

  /** A scalar constant of the graph's float type (deduplicated). */
  scalar(value: number): string {
    const key = `${this.dtype}:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const_${this.constants.size}`;
      const data = this.dtype === 'float64' ? Float64Array.of(value) : Float32Array.of(value);
      this.initializers.push({ name, type: this.dtype, dims: [], data });
      this.constants.set(key, name);
    }
    return name;
  }

  int64s(values: number[]): string {
    const key = `int64:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const_${this.constants.size}`;
      this.initializers.push({ name, type: 'int64', dims: [values.length], data: BigInt64Array.from(values, BigInt) });
      this.constants.set(key, name);
    }
    return name;
  }

  get elemCode(): number {
    return this.dtype === 'float64' ? 11 : 1;
  }

  /** Σ over the given axes (all when omitted). */
  reduceSum(x: string, axes: number[] | null, keepdims: boolean, output?: string): string {
    const inputs = axes ? [x, this.int64s(axes)] : [x];
    return this.op('ReduceSum', inputs, { keepdims: attr.int(keepdims ? 1 : 0) }, output);
  }
}

export interface HeadGraphShape {
  /** Layer widths [features, ...hidden, classes]. */
  widths: number[];
  dtype: GraphDtype;
}

export interface TrainGraphOptions extends HeadGraphShape {
  optimizer: OptimizerConfig;
  /** Adds a dropout_mask.<l> input [batch, hidden width] per hidden layer, multiplied into its ReLU output. */
  dropout: boolean;
  /** Also output each parameter's gradient (including the L2 term of adam/sgd weight decay), for testing. */
  exposeGradients?: boolean;
}

export interface BuiltGraph {
  model: Uint8Array;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
}

/** Parameter names in order: layer0.weight, layer0.bias, layer1.weight, ... */
export function parameterNames(layers: number): string[] {
  return Array.from({ length: layers }, (_, l) => [io.weight(l), io.bias(l)]).flat();
}

function parameterSpecs(widths: number[], dtype: ElemType): ValueSpec[] {
  const specs: ValueSpec[] = [];
  for (let l = 0; l + 1 < widths.length; l++) {
    specs.push({ name: io.weight(l), type: dtype, dims: [widths[l + 1]!, widths[l]!] });
    specs.push({ name: io.bias(l), type: dtype, dims: [widths[l + 1]!] });
  }
  return specs;
}

/** Optimiser state tensors of each parameter, in feed order. */
export function stateNames(optimizer: OptimizerConfig, param: string): string[] {
  if (optimizer.optimizer === 'sgd') return optimizer.momentum > 0 ? [io.moment1(param)] : [];
  return [io.moment1(param), io.moment2(param)];
}

/** Per-step scalar inputs the optimiser needs. */
export function scalarInputNames(optimizer: OptimizerConfig): string[] {
  switch (optimizer.optimizer) {
    case 'adam':
      return [io.stepSize, io.bias2Sqrt];
    case 'adamw':
      return optimizer.weightDecay > 0 ? [io.stepSize, io.bias2Sqrt, io.decay] : [io.stepSize, io.bias2Sqrt];
    case 'sgd':
      return optimizer.momentum > 0 ? [io.lr, io.momentumScale] : [io.lr];
  }
}

interface Forward {
  /** Pre-activations z and layer outputs h (h of layer -1 is the features). */
  z: string[];
  h: string[];
  logits: string;
}

function forward(g: GraphWriter, widths: number[], masks: string[] | null): Forward {
  const layers = widths.length - 1;
  const z: string[] = [];
  const h: string[] = [];
  let input: string = io.features;
  for (let l = 0; l < layers; l++) {
    const last = l === layers - 1;
    const zl = g.op('Gemm', [input, io.weight(l), io.bias(l)], { transB: attr.int(1) }, last ? io.logits : undefined);
    z.push(zl);
    if (last) break;
    const relu = g.op('Relu', [zl]);
    input = masks ? g.op('Mul', [relu, masks[l]!]) : relu;
    h.push(input);
  }
  return { z, h, logits: z[layers - 1]! };
}

export interface LossTerms {
  logProb: string;
  /** One-hot labels [batch, classes]. */
  oneHot: string;
  /** Class weight of each sample, [batch, 1]. */
  sampleWeight: string;
  weightSum: string;
  lossSum: string;
  correct: string;
}

/** Class-weighted cross-entropy terms: loss = lossSum / weightSum (PyTorch's weighted mean). */
export function lossTerms(g: GraphWriter, logits: string, classes: number): LossTerms {
  const logProb = g.op('LogSoftmax', [logits], { axis: attr.int(1) });
  const labelColumn = g.op('Unsqueeze', [io.labels, g.int64s([1])]);
  const classIds = g.int64s(Array.from({ length: classes }, (_, c) => c));
  const oneHot = g.op('Cast', [g.op('Equal', [labelColumn, classIds])], { to: attr.int(g.elemCode) });
  const weights = g.op('Gather', [io.classWeights, io.labels], { axis: attr.int(0) });
  const sampleWeight = g.op('Unsqueeze', [weights, g.int64s([1])]);
  const weightSum = g.reduceSum(weights, null, false, io.weightSum);
  const picked = g.op('Mul', [oneHot, logProb]);
  const weightedPicked = g.reduceSum(g.op('Mul', [picked, sampleWeight]), null, false);
  const lossSum = g.op('Neg', [weightedPicked], undefined, io.lossSum);
  const predicted = g.op('ArgMax', [logits], { axis: attr.int(1), keepdims: attr.int(0) });
  const hits = g.op('Cast', [g.op('Equal', [predicted, io.labels])], { to: attr.int(g.elemCode) });
  const correct = g.reduceSum(hits, null, false, io.correct);
  return { logProb, oneHot, sampleWeight, weightSum, lossSum, correct };
}

function scalarSpec(name: string, dtype: ElemType): ValueSpec {
  return { name, type: dtype, dims: [] };
}

function dataInputs(widths: number[], dtype: GraphDtype, withLabels: boolean): ValueSpec[] {
  const classes = widths[widths.length - 1]!;
  const inputs: ValueSpec[] = [{ name: io.features, type: dtype, dims: [BATCH, widths[0]!] }];
  if (withLabels) {
    inputs.push({ name: io.labels, type: 'int64', dims: [BATCH] });
    inputs.push({ name: io.classWeights, type: dtype, dims: [classes] });
  }
  return inputs;
}

/** One parameter's update, as PyTorch's Adam/AdamW/SGD (single-tensor path) computes it. */
function optimizerUpdate(g: GraphWriter, o: OptimizerConfig, param: string, grad: string): void {
  const wd = o.weightDecay;
  const l2 = wd > 0 && o.optimizer !== 'adamw';
  const gradient = l2 ? g.op('Add', [grad, g.op('Mul', [param, g.scalar(wd)])]) : grad;
  // Named so tests can read it; pruned from the model unless exposed.
  g.op('Identity', [gradient], undefined, io.grad(param));
  if (o.optimizer === 'sgd') {
    let direction = gradient;
    if (o.momentum > 0) {
      const buffer = g.op(
        'Add',
        [g.op('Mul', [io.moment1(param), g.scalar(o.momentum)]), g.op('Mul', [gradient, io.momentumScale])],
        undefined,
        io.next(io.moment1(param)),
      );
      direction = o.nesterov ? g.op('Add', [gradient, g.op('Mul', [buffer, g.scalar(o.momentum)])]) : buffer;
    }
    g.op('Sub', [param, g.op('Mul', [direction, io.lr])], undefined, io.next(param));
    return;
  }
  const [beta1, beta2] = o.betas;
  const m = g.op(
    'Add',
    [g.op('Mul', [io.moment1(param), g.scalar(beta1)]), g.op('Mul', [gradient, g.scalar(1 - beta1)])],
    undefined,
    io.next(io.moment1(param)),
  );
  const v = g.op(
    'Add',
    [g.op('Mul', [io.moment2(param), g.scalar(beta2)]), g.op('Mul', [g.op('Mul', [gradient, gradient]), g.scalar(1 - beta2)])],
    undefined,
    io.next(io.moment2(param)),
  );
  const denominator = g.op('Add', [g.op('Div', [g.op('Sqrt', [v]), io.bias2Sqrt]), g.scalar(o.eps)]);
  const decayed = o.optimizer === 'adamw' && wd > 0 ? g.op('Mul', [param, io.decay]) : param;
  g.op('Sub', [decayed, g.op('Mul', [io.stepSize, g.op('Div', [m, denominator])])], undefined, io.next(param));
}

export function buildTrainGraph(options: TrainGraphOptions): BuiltGraph {
  const { widths, dtype, optimizer } = options;
  const layers = widths.length - 1;
  const classes = widths[layers]!;
  const g = new GraphWriter(dtype);
  const masks = options.dropout ? widths.slice(1, -1).map((_, l) => io.dropoutMask(l)) : null;

  const f = forward(g, widths, masks);
  const t = lossTerms(g, f.logits, classes);
  g.op('Div', [t.lossSum, t.weightSum], undefined, io.loss);

  // d loss / d logits = (softmax − onehot) · w / Σw
  const softmax = g.op('Exp', [t.logProb]);
  const coefficient = g.op('Div', [t.sampleWeight, t.weightSum]);
  let dz = g.op('Mul', [g.op('Sub', [softmax, t.oneHot]), coefficient]);
  const grads = new Map<string, string>();
  for (let l = layers - 1; l >= 0; l--) {
    const input = l === 0 ? io.features : f.h[l - 1]!;
    grads.set(io.weight(l), g.op('Gemm', [dz, input], { transA: attr.int(1) }));
    grads.set(io.bias(l), g.reduceSum(dz, [0], false));
    if (l === 0) break;
    // Back through W, then dropout's mask, then ReLU (derivative 0 at z ≤ 0, as PyTorch).
    let dh = g.op('MatMul', [dz, io.weight(l)]);
    if (masks) dh = g.op('Mul', [dh, masks[l - 1]!]);
    const active = g.op('Cast', [g.op('Greater', [f.z[l - 1]!, g.scalar(0)])], { to: attr.int(g.elemCode) });
    dz = g.op('Mul', [dh, active]);
  }

  const params = parameterNames(layers);
  for (const p of params) optimizerUpdate(g, optimizer, p, grads.get(p)!);

  const paramSpecs = parameterSpecs(widths, dtype);
  const inputs: ValueSpec[] = [...dataInputs(widths, dtype, true)];
  if (masks) masks.forEach((name, l) => inputs.push({ name, type: dtype, dims: [BATCH, widths[l + 1]!] }));
  inputs.push(...paramSpecs);
  for (const spec of paramSpecs)
    for (const s of stateNames(optimizer, spec.name)) inputs.push({ ...spec, name: s });
  for (const s of scalarInputNames(optimizer)) inputs.push(scalarSpec(s, dtype));

  const outputs: ValueSpec[] = paramSpecs.map((s) => ({ ...s, name: io.next(s.name) }));
  for (const spec of paramSpecs)
    for (const s of stateNames(optimizer, spec.name)) outputs.push({ ...spec, name: io.next(s) });
  outputs.push(scalarSpec(io.loss, dtype), scalarSpec(io.correct, dtype));
  if (options.exposeGradients) outputs.push(...paramSpecs.map((s) => ({ ...s, name: io.grad(s.name) })));

  return finish(g, 'head_train_step', inputs, outputs);
}

/**
 * The full-batch gradient graph of a linear head (the L-BFGS solver's
 * objective): forward pass, class-weighted cross-entropy, and the gradient
 * of the loss *sum* Σ w·nll with respect to weight and bias, so that chunks
 * of rows can be added up; the caller divides by the weight sum.
 */
export function buildGradientGraph(options: HeadGraphShape): BuiltGraph {
  const { widths, dtype } = options;
  if (widths.length !== 2) throw new RangeError(`the gradient graph is for linear heads, got layer widths ${widths.join('→')}`);
  const g = new GraphWriter(dtype);
  const f = forward(g, widths, null);
  const t = lossTerms(g, f.logits, widths[1]!);
  const dz = g.op('Mul', [g.op('Sub', [g.op('Exp', [t.logProb]), t.oneHot]), t.sampleWeight]);
  g.op('Gemm', [dz, io.features], { transA: attr.int(1) }, io.grad(io.weight(0)));
  g.reduceSum(dz, [0], false, io.grad(io.bias(0)));
  const paramSpecs = parameterSpecs(widths, dtype);
  const inputs = [...dataInputs(widths, dtype, true), ...paramSpecs];
  const outputs: ValueSpec[] = [
    scalarSpec(io.lossSum, dtype),
    scalarSpec(io.weightSum, dtype),
    scalarSpec(io.correct, dtype),
    ...paramSpecs.map((s) => ({ ...s, name: io.grad(s.name) })),
  ];
  return finish(g, 'head_gradient', inputs, outputs);
}

export interface EvalGraphOptions extends HeadGraphShape {
  /** With labels: also loss_sum, weight_sum and correct (needs labels and class_weights inputs). */
  withLabels: boolean;
}

/** Forward pass without dropout: logits, probabilities, predicted class; with labels also the loss terms. */
export function buildEvalGraph(options: EvalGraphOptions): BuiltGraph {
  const { widths, dtype } = options;
  const layers = widths.length - 1;
  const classes = widths[layers]!;
  const g = new GraphWriter(dtype);
  const f = forward(g, widths, null);
  g.op('Softmax', [f.logits], { axis: attr.int(1) }, io.probabilities);
  g.op('ArgMax', [f.logits], { axis: attr.int(1), keepdims: attr.int(0) }, io.predicted);
  const outputs: ValueSpec[] = [
    { name: io.logits, type: dtype, dims: [BATCH, classes] },
    { name: io.probabilities, type: dtype, dims: [BATCH, classes] },
    { name: io.predicted, type: 'int64', dims: [BATCH] },
  ];
  if (options.withLabels) {
    lossTerms(g, f.logits, classes);
    outputs.push(scalarSpec(io.lossSum, dtype), scalarSpec(io.weightSum, dtype), scalarSpec(io.correct, dtype));
  }
  const inputs = [...dataInputs(widths, dtype, options.withLabels), ...parameterSpecs(widths, dtype)];
  return finish(g, 'head_eval', inputs, outputs);
}

export function finish(g: GraphWriter, name: string, inputs: ValueSpec[], outputs: ValueSpec[]): BuiltGraph {
  // Drop nodes whose outputs nothing uses (e.g. gradients that are not exposed),
  // so onnxruntime does not compute them.
  const wanted = new Set(outputs.map((o) => o.name));
  const kept: NodeSpec[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const node = g.nodes[i]!;
    if (!node.outputs.some((o) => wanted.has(o))) continue;
    kept.push(node);
    for (const input of node.inputs) wanted.add(input);
  }
  kept.reverse();
  const initializers = g.initializers.filter((t) => wanted.has(t.name));
  const model = buildModel({ name, nodes: kept, inputs, outputs, initializers, opset: OPSET });
  return { model, inputs, outputs };
}
