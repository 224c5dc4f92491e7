// The fine-tuning graphs, built from ordinary ONNX operators so they run on
// onnxruntime's CPU and CUDA providers:
//  - the training step: activations at the cut → the unfrozen top (conv,
//    clip, add, global pooling, flatten) → the head (Gemm, ReLU between
//    layers) → class-weighted cross-entropy → hand-written back-propagation
//    through all of it → one AdamW update with separate step sizes and decay
//    factors for the top's blocks and for the head;
//  - the evaluation pass: logits, probabilities, and with labels the loss terms;
//  - the features pass: the top alone (for exporting and for checks).
// float64 builds exist to check gradients against finite differences.
import { attr, type NodeSpec, type TensorInit, type ValueSpec } from '../onnx/builder.js';
import { type BuiltGraph, finish, GraphWriter, type GraphDtype, io as headIo, lossTerms } from '../train/graph.js';
import { convForward, convGeometry, type ConvGeometry, convInputGradient, convWeightGradient } from './conv-ops.js';
import { elements, type TopNet, type TopOp, topShapes } from './top.js';

const BATCH = 'batch';

export const ftIo = {
  activations: 'activations',
  labels: headIo.labels,
  classWeights: headIo.classWeights,
  headWeight: (l: number) => `head.${l}.weight`,
  headBias: (l: number) => `head.${l}.bias`,
  next: headIo.next,
  grad: headIo.grad,
  moment1: headIo.moment1,
  moment2: headIo.moment2,
  loss: headIo.loss,
  correct: headIo.correct,
  logits: headIo.logits,
  probabilities: headIo.probabilities,
  predicted: headIo.predicted,
  lossSum: headIo.lossSum,
  weightSum: headIo.weightSum,
  features: 'features',
  /** AdamW per group: lr / (1 − β1^t). */
  stepSize: (group: ParamGroup) => `step_size.${group}`,
  /** AdamW per group: 1 − lr·weight_decay. */
  decay: (group: ParamGroup) => `decay.${group}`,
  /** sqrt(1 − β2^t). */
  bias2Sqrt: headIo.bias2Sqrt,
} as const;

export type ParamGroup = 'blocks' | 'head';

/** The shapes a fine-tuning graph is built for; parameter values are fed as inputs. */
export interface FinetuneShape {
  /** The top, its parameters' dims (their data is not read here). */
  top: Pick<TopNet, 'input' | 'inputShape' | 'output' | 'ops'> & { params: { name: string; dims: number[] }[] };
  /** Head layer widths [features, ...hidden, classes]. */
  headWidths: number[];
  dtype: GraphDtype;
}

export interface AdamWConfig {
  betas: readonly [number, number];
  eps: number;
}

export interface FinetuneTrainOptions extends FinetuneShape {
  optimizer: AdamWConfig;
  /** Also output each parameter's gradient, for testing. */
  exposeGradients?: boolean;
}

export interface ParamSpec {
  name: string;
  dims: number[];
  group: ParamGroup;
}

/** Every trainable parameter in feed order: the top's, then the head's. */
export function finetuneParams(shape: Pick<FinetuneShape, 'top' | 'headWidths'>): ParamSpec[] {
  const specs: ParamSpec[] = shape.top.params.map((p) => ({ name: p.name, dims: [...p.dims], group: 'blocks' }));
  const w = shape.headWidths;
  for (let l = 0; l + 1 < w.length; l++) {
    specs.push({ name: ftIo.headWeight(l), dims: [w[l + 1]!, w[l]!], group: 'head' });
    specs.push({ name: ftIo.headBias(l), dims: [w[l + 1]!], group: 'head' });
  }
  return specs;
}

export const scalarInputs = (): string[] => [ftIo.stepSize('blocks'), ftIo.stepSize('head'), ftIo.decay('blocks'), ftIo.decay('head'), ftIo.bias2Sqrt];

interface TopForward {
  /** Each op's output tensor name in the graph, by the top's tensor names. */
  values: Map<string, string>;
  geometry: Map<TopOp, ConvGeometry>;
  shapes: Map<string, number[]>;
  features: string;
}

function topForward(g: GraphWriter, shape: FinetuneShape, featuresOutput?: string): TopForward {
  const { top } = shape;
  const shapes = topShapes({ ...top, params: top.params.map((p) => ({ ...p, data: new Float32Array(0) })) });
  const dims = new Map(top.params.map((p) => [p.name, p.dims]));
  const values = new Map<string, string>();
  values.set(top.input, g.op('Reshape', [ftIo.activations, g.int64s([-1, ...top.inputShape])]));
  const geometry = new Map<TopOp, ConvGeometry>();
  top.ops.forEach((op) => {
    const out = op.output === top.output ? featuresOutput : undefined;
    const v = (name: string) => values.get(name)!;
    switch (op.op) {
      case 'conv': {
        const c = convGeometry(op, shapes.get(op.input)!, dims.get(op.weight)!);
        geometry.set(op, c);
        values.set(op.output, convForward(g, c, v(op.input), op.weight, op.bias, out));
        break;
      }
      case 'clip':
        values.set(
          op.output,
          op.min === 0 && op.max === Infinity ? g.op('Relu', [v(op.input)], undefined, out) : g.op('Clip', [v(op.input), g.scalar(op.min), g.scalar(op.max)], undefined, out),
        );
        break;
      case 'add':
        values.set(op.output, g.op('Add', [v(op.inputs[0]), v(op.inputs[1])], undefined, out));
        break;
      case 'gap':
        // onnxruntime's GlobalAveragePool has no double kernel; ReduceMean's axes attribute is gone from opset 18.
        values.set(
          op.output,
          g.dtype === 'float32'
            ? g.op('Flatten', [g.op('GlobalAveragePool', [v(op.input)])], { axis: attr.int(1) }, out)
            : g.op('ReduceMean', [v(op.input)], { axes: attr.ints([2, 3]), keepdims: attr.int(0) }, out),
        );
        break;
      case 'flatten':
        values.set(op.output, g.op('Flatten', [v(op.input)], { axis: attr.int(1) }, out));
        break;
    }
  });
  let features = values.get(top.output)!;
  if (featuresOutput && features !== featuresOutput) features = g.op('Identity', [features], undefined, featuresOutput);
  return { values, geometry, shapes, features };
}

interface HeadForward {
  z: string[];
  h: string[];
  logits: string;
}

function headForward(g: GraphWriter, widths: number[], input: string): HeadForward {
  const layers = widths.length - 1;
  const z: string[] = [];
  const h: string[] = [];
  for (let l = 0; l < layers; l++) {
    const last = l === layers - 1;
    const zl = g.op('Gemm', [input, ftIo.headWeight(l), ftIo.headBias(l)], { transB: attr.int(1) }, last ? ftIo.logits : undefined);
    z.push(zl);
    if (last) break;
    input = g.op('Relu', [zl]);
    h.push(input);
  }
  return { z, h, logits: z[layers - 1]! };
}

/** Gradients arriving at each tensor, added up when a tensor feeds several operators. */
class GradientSums {
  private readonly parts = new Map<string, string[]>();
  constructor(private readonly g: GraphWriter) {}
  add(tensor: string, grad: string): void {
    const list = this.parts.get(tensor) ?? [];
    list.push(grad);
    this.parts.set(tensor, list);
  }
  /** The total gradient of a tensor, or undefined when nothing depends on it. */
  take(tensor: string): string | undefined {
    const list = this.parts.get(tensor);
    if (!list?.length) return undefined;
    return list.length === 1 ? list[0] : this.g.op('Sum', list);
  }
}

function mask(g: GraphWriter, condition: string): string {
  return g.op('Cast', [condition], { to: attr.int(g.elemCode) });
}

/** Back-propagation through the top, from dL/d(features); returns each top parameter's gradient. */
function topBackward(g: GraphWriter, shape: FinetuneShape, f: TopForward, dFeatures: string): Map<string, string> {
  const grads = new Map<string, string>();
  const sums = new GradientSums(g);
  sums.add(shape.top.output, dFeatures);
  const v = (name: string) => f.values.get(name)!;
  for (const op of [...shape.top.ops].reverse()) {
    const dy = sums.take(op.output);
    if (!dy) continue;
    switch (op.op) {
      case 'conv': {
        const c = f.geometry.get(op)!;
        grads.set(op.weight, convWeightGradient(g, c, v(op.input), dy));
        grads.set(op.bias, g.reduceSum(dy, [0, 2, 3], false));
        // The cut's own gradient is not needed: nothing below it trains.
        if (op.input !== shape.top.input) sums.add(op.input, convInputGradient(g, c, dy, op.weight));
        break;
      }
      case 'clip': {
        // Passes where min < x < max, as PyTorch's hardtanh and ReLU (0 at the bounds).
        const x = v(op.input);
        const above = g.op('Greater', [x, g.scalar(op.min)]);
        const inside = op.max === Infinity ? above : g.op('And', [above, g.op('Less', [x, g.scalar(op.max)])]);
        if (op.input !== shape.top.input) sums.add(op.input, g.op('Mul', [dy, mask(g, inside)]));
        break;
      }
      case 'add':
        for (const input of op.inputs) if (input !== shape.top.input) sums.add(input, dy);
        break;
      case 'gap': {
        const [C, H, W] = f.shapes.get(op.input)! as [number, number, number];
        const spread = g.op('Unsqueeze', [dy, g.int64s([2, 3])]);
        const share = `gap_share_${op.output}`;
        const data = g.dtype === 'float64' ? new Float64Array(H * W).fill(1 / (H * W)) : new Float32Array(H * W).fill(1 / (H * W));
        g.initializers.push({ name: share, type: g.dtype, dims: [1, 1, H, W], data });
        void C;
        if (op.input !== shape.top.input) sums.add(op.input, g.op('Mul', [spread, share]));
        break;
      }
      case 'flatten':
        if (op.input !== shape.top.input) sums.add(op.input, g.op('Reshape', [dy, g.int64s([-1, ...f.shapes.get(op.input)!])]));
        break;
    }
  }
  return grads;
}

/** Back-propagation through the head from dL/dlogits; returns its parameter gradients and dL/d(features). */
function headBackward(g: GraphWriter, widths: number[], features: string, h: HeadForward, dLogits: string): { grads: Map<string, string>; dFeatures: string } {
  const grads = new Map<string, string>();
  let dz = dLogits;
  for (let l = widths.length - 2; l >= 0; l--) {
    const input = l === 0 ? features : h.h[l - 1]!;
    grads.set(ftIo.headWeight(l), g.op('Gemm', [dz, input], { transA: attr.int(1) }));
    grads.set(ftIo.headBias(l), g.reduceSum(dz, [0], false));
    const dh = g.op('MatMul', [dz, ftIo.headWeight(l)]);
    if (l === 0) return { grads, dFeatures: dh };
    dz = g.op('Mul', [dh, mask(g, g.op('Greater', [h.z[l - 1]!, g.scalar(0)]))]);
  }
  throw new RangeError('the head has no layers');
}

/** AdamW, as PyTorch's single-tensor path: decoupled decay, then the Adam step. */
function adamw(g: GraphWriter, o: AdamWConfig, p: ParamSpec, grad: string): void {
  const [beta1, beta2] = o.betas;
  const param = p.name;
  g.op('Identity', [grad], undefined, ftIo.grad(param));
  const m = g.op('Add', [g.op('Mul', [ftIo.moment1(param), g.scalar(beta1)]), g.op('Mul', [grad, g.scalar(1 - beta1)])], undefined, ftIo.next(ftIo.moment1(param)));
  const v = g.op(
    'Add',
    [g.op('Mul', [ftIo.moment2(param), g.scalar(beta2)]), g.op('Mul', [g.op('Mul', [grad, grad]), g.scalar(1 - beta2)])],
    undefined,
    ftIo.next(ftIo.moment2(param)),
  );
  const denominator = g.op('Add', [g.op('Div', [g.op('Sqrt', [v]), ftIo.bias2Sqrt]), g.scalar(o.eps)]);
  const decayed = g.op('Mul', [param, ftIo.decay(p.group)]);
  g.op('Sub', [decayed, g.op('Mul', [ftIo.stepSize(p.group), g.op('Div', [m, denominator])])], undefined, ftIo.next(param));
}

function dataInputs(shape: FinetuneShape, withLabels: boolean): ValueSpec[] {
  const classes = shape.headWidths[shape.headWidths.length - 1]!;
  const inputs: ValueSpec[] = [{ name: ftIo.activations, type: shape.dtype, dims: [BATCH, elements(shape.top.inputShape)] }];
  if (withLabels) inputs.push({ name: ftIo.labels, type: 'int64', dims: [BATCH] }, { name: ftIo.classWeights, type: shape.dtype, dims: [classes] });
  return inputs;
}

const scalarSpec = (name: string, dtype: GraphDtype): ValueSpec => ({ name, type: dtype, dims: [] });

export const stateNames = (param: string): string[] => [ftIo.moment1(param), ftIo.moment2(param)];

/** One training step: loss, gradients of every parameter, one AdamW update. */
export function buildFinetuneTrainGraph(options: FinetuneTrainOptions): BuiltGraph {
  const { dtype, headWidths } = options;
  const g = new GraphWriter(dtype);
  const top = topForward(g, options);
  const head = headForward(g, headWidths, top.features);
  const t = lossTerms(g, head.logits, headWidths[headWidths.length - 1]!);
  g.op('Div', [t.lossSum, t.weightSum], undefined, ftIo.loss);
  const dLogits = g.op('Mul', [g.op('Sub', [g.op('Exp', [t.logProb]), t.oneHot]), g.op('Div', [t.sampleWeight, t.weightSum])]);
  const h = headBackward(g, headWidths, top.features, head, dLogits);
  const grads = new Map([...topBackward(g, options, top, h.dFeatures), ...h.grads]);
  const params = finetuneParams(options);
  for (const p of params) {
    const grad = grads.get(p.name);
    if (!grad) throw new RangeError(`the top's parameter "${p.name}" does not affect the features`);
    adamw(g, options.optimizer, p, grad);
  }
  const paramSpecs: ValueSpec[] = params.map((p) => ({ name: p.name, type: dtype, dims: p.dims }));
  const inputs: ValueSpec[] = [...dataInputs(options, true), ...paramSpecs];
  for (const p of paramSpecs) for (const s of stateNames(p.name)) inputs.push({ ...p, name: s });
  for (const s of scalarInputs()) inputs.push(scalarSpec(s, dtype));
  const outputs: ValueSpec[] = paramSpecs.map((p) => ({ ...p, name: ftIo.next(p.name) }));
  for (const p of paramSpecs) for (const s of stateNames(p.name)) outputs.push({ ...p, name: ftIo.next(s) });
  outputs.push(scalarSpec(ftIo.loss, dtype), scalarSpec(ftIo.correct, dtype));
  if (options.exposeGradients) outputs.push(...paramSpecs.map((p) => ({ ...p, name: ftIo.grad(p.name) })));
  return finish(g, 'finetune_train_step', inputs, outputs);
}

export interface FinetuneEvalOptions extends FinetuneShape {
  withLabels: boolean;
}

/** Forward pass: logits, probabilities, predicted class; with labels also loss_sum, weight_sum, correct. */
export function buildFinetuneEvalGraph(options: FinetuneEvalOptions): BuiltGraph {
  const { dtype, headWidths } = options;
  const classes = headWidths[headWidths.length - 1]!;
  const g = new GraphWriter(dtype);
  const top = topForward(g, options, ftIo.features);
  const head = headForward(g, headWidths, top.features);
  g.op('Softmax', [head.logits], { axis: attr.int(1) }, ftIo.probabilities);
  g.op('ArgMax', [head.logits], { axis: attr.int(1), keepdims: attr.int(0) }, ftIo.predicted);
  const outputs: ValueSpec[] = [
    { name: ftIo.logits, type: dtype, dims: [BATCH, classes] },
    { name: ftIo.probabilities, type: dtype, dims: [BATCH, classes] },
    { name: ftIo.predicted, type: 'int64', dims: [BATCH] },
    { name: ftIo.features, type: dtype, dims: [BATCH, headWidths[0]!] },
  ];
  if (options.withLabels) {
    lossTerms(g, head.logits, classes);
    outputs.push(scalarSpec(ftIo.lossSum, dtype), scalarSpec(ftIo.weightSum, dtype), scalarSpec(ftIo.correct, dtype));
  }
  const params = finetuneParams(options).map((p): ValueSpec => ({ name: p.name, type: dtype, dims: p.dims }));
  return finish(g, 'finetune_eval', [...dataInputs(options, options.withLabels), ...params], outputs);
}

/** The top's float32 forward pass as nodes and constants, to splice after a bottom whose output is the activations. */
export function topFeatureNodes(top: TopNet, featureWidth: number): { nodes: NodeSpec[]; initializers: TensorInit[] } {
  const g = new GraphWriter('float32');
  topForward(g, { top, headWidths: [featureWidth], dtype: 'float32' }, ftIo.features);
  return { nodes: g.nodes, initializers: g.initializers };
}

/** The top's forward pass alone: activations → features (what the exported model computes). */
export function buildTopFeaturesGraph(shape: Omit<FinetuneShape, 'headWidths'> & { featureWidth: number }): BuiltGraph {
  const g = new GraphWriter(shape.dtype);
  topForward(g, { ...shape, headWidths: [shape.featureWidth] }, ftIo.features);
  const params = shape.top.params.map((p): ValueSpec => ({ name: p.name, type: shape.dtype, dims: p.dims }));
  const inputs: ValueSpec[] = [{ name: ftIo.activations, type: shape.dtype, dims: [BATCH, elements(shape.top.inputShape)] }, ...params];
  return finish(g, 'finetune_features', inputs, [{ name: ftIo.features, type: shape.dtype, dims: [BATCH, shape.featureWidth] }]);
}
