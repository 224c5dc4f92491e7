// Static int8 quantization of a float32 backbone, written in onnxruntime's QDQ
// format (https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html):
// every quantized tensor T becomes QuantizeLinear → DequantizeLinear around
// the float graph, and onnxruntime's CPU graph optimizer fuses each
// DequantizeLinear → Conv/MatMul/Add → QuantizeLinear group into QLinearConv,
// QLinearMatMul or QLinearAdd, and drops the pair around a MaxPool.
//
// The choices are onnxruntime's documented defaults for CNNs on x86-64:
// activations uint8 asymmetric with MinMax calibration, weights int8
// symmetric, per output channel for Conv (needs opset 13), biases int32 with
// scale = input scale × weight scale. A Relu, or a Clip whose range holds 0,
// right after a quantized operator is folded into its output quantization:
// QuantizeLinear saturates there (with a zero point of 0, exactly as Relu).
//
// What cannot be quantized safely is refused with a message, never written
// wrong: and the written model is run against the float one on sample images
// before it is returned.
import type { InferenceSession } from 'onnxruntime-node';
import { attr } from './builder.js';
import { type CalibrationBatch, Calibrator, type Range } from './calibrate.js';
import { foldBatchNorms } from './fold-batchnorm.js';
import {
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  OnnxModelError,
  defaultOpset,
  describeNode,
  encodeModel,
  makeInitializer,
  makeNode,
  parseModel,
  parseNode,
  tensorValues,
} from './model.js';
import { uniqueName } from './names.js';
import { pruneUnreachable } from './prune.js';
import { pb } from './protobuf.js';
import { createSession } from './runtime.js';
import { PhaseTimer } from '../phase-timer.js';
import { constantTensor, float32Data } from './tensor-data.js';

export type { CalibrationBatch } from './calibrate.js';

export interface QuantizeOptions {
  /** Names the model in messages. */
  source?: string;
  /** Sample inputs (preprocessed images) whose ranges set the activation scales. */
  calibration: readonly CalibrationBatch[];
  /** Inputs on which the int8 model is compared with the float one (default: the first two calibration batches). */
  check?: readonly CalibrationBatch[];
  /** The least mean cosine similarity of int8 and float outputs on `check` before the model is refused (default 0.9). */
  minCosine?: number;
  /** onnxruntime threads of the calibration and check sessions (default: onnxruntime's, one per core). */
  intraOpThreads?: number;
  /** onnxruntime's spin-waiting in those sessions (default off; src/features/threads.ts, spinningAlone, says when it pays). */
  spinning?: boolean;
  /** Records the time of each phase (parse, plan, calibration, rewrite, encode, check). */
  timer?: PhaseTimer;
}

export interface QuantizedModel {
  bytes: Uint8Array;
  /** Operators now computed in int8, by type (Conv, MatMul, Add, MaxPool). */
  quantizedNodes: Record<string, number>;
  /** Weighted operators left in float, and why. */
  keptFloat: { node: string; reason: string }[];
  foldedBatchNorms: number;
  /** Relu / Clip nodes absorbed into the quantization of their input. */
  foldedActivations: number;
  /** Whether Conv weights have one scale per output channel. */
  perChannel: boolean;
  /** The default-domain opset of the written model (raised to 13 for per-channel weights when that is safe). */
  opset: number;
  /** Cosine similarity of int8 and float outputs, per image, on the check inputs. */
  agreement: { mean: number; min: number; images: number };
}

/** Operators that already mean a quantized graph. */
const QUANTIZED_OPS = new Set([
  'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'QLinearConv', 'QLinearMatMul', 'ConvInteger',
  'MatMulInteger', 'QLinearAdd', 'QLinearMul', 'QGemm', 'QLinearGlobalAveragePool', 'QLinearAveragePool',
  'QLinearConcat', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearSoftmax', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat',
]);

/**
 * Operators whose meaning is the same at opset 11, 12 and 13: a graph made of
 * these only can have its opset raised to 13, where DequantizeLinear takes a
 * per-channel axis. (Softmax, Split, ReduceSum, Dropout and Resize changed at
 * 13 and are not here; Squeeze and Unsqueeze are rewritten, see AXES_TO_INPUT.)
 */
const SAME_AT_OPSET_13 = new Set([
  'Conv', 'Relu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'BatchNormalization', 'Add', 'Sub',
  'Mul', 'Div', 'Flatten', 'Reshape', 'Gemm', 'MatMul', 'Concat', 'Clip', 'Sigmoid', 'Tanh', 'Identity', 'Transpose',
  'Shape', 'Gather', 'Constant', 'Pad', 'ReduceMean', 'Sqrt', 'Exp', 'Pow', 'LRN', 'Cast', 'LeakyRelu', 'HardSigmoid',
]);

const PER_CHANNEL_OPSET = 13;
const QDQ_OPSET = 10;
const INT8_MAX = 127;
const INT32_MAX = 2 ** 31 - 1;
const DEFAULT_MIN_COSINE = 0.9;

interface Params {
  scale: string;
  zeroPoint: string;
  scaleValue: number;
}

function refuse(model: OnnxModel, why: string, todo: string): never {
  throw new OnnxModelError(`cannot quantize ${model.source}: ${why}. ${todo}`);
}

function checkQuantizable(model: OnnxModel): void {
  const g = model.graph;
  const quantized = g.nodes.filter((n) => QUANTIZED_OPS.has(n.opType));
  if (quantized.length) {
    refuse(model, `it is already quantized (${quantized.length} nodes such as ${describeNode(quantized[0]!)})`, 'Use it as it is, without the quantize stage.');
  }
  if (g.inputs.length !== 1) {
    refuse(model, `it takes ${g.inputs.length} inputs; the quantizer calibrates a model with one image input`, 'Use a single-input image model.');
  }
  if (g.inputs[0]!.elemType !== 'float32') {
    refuse(model, `its input "${g.inputs[0]!.name}" holds ${g.inputs[0]!.elemType ?? 'non-tensor'} values, not float32`, 'Quantize a float32 model.');
  }
  const withSubgraph = g.nodes.find((n) => n.attributes.some((a) => a.type === 'graph' || a.type === 'graphs'));
  if (withSubgraph) {
    refuse(model, `it has control flow (${describeNode(withSubgraph)} holds a subgraph), which this quantizer does not rewrite`, 'Keep the float model for this backbone.');
  }
  const opset = defaultOpset(model);
  if (opset < QDQ_OPSET) {
    refuse(model, `it uses ONNX opset ${opset}; QuantizeLinear and DequantizeLinear need opset ${QDQ_OPSET}`, 'Convert it to opset 13 first (onnx.version_converter.convert_version(model, 13)).');
  }
}

/** Node inputs and outputs replaced, everything else (name, attributes, domain) kept. */
function withIO(node: OnnxNode, inputs: readonly string[], outputs: readonly string[]): OnnxNode {
  return parseNode([
    ...inputs.map((i) => pb.string(1, i)),
    ...outputs.map((o) => pb.string(2, o)),
    ...node.fields.filter((f) => f.no !== 1 && f.no !== 2),
  ]);
}

/** The lower and upper bounds of a Clip, when they are constants (attributes before opset 11, inputs after). */
function clipBounds(node: OnnxNode, graph: OnnxGraph): [number, number] | undefined {
  const fromAttr = (name: string, fallback: number) => {
    const a = node.attributes.find((x) => x.name === name);
    return a?.type === 'float' ? a.value : fallback;
  };
  if (node.inputs.length <= 1) return [fromAttr('min', -Infinity), fromAttr('max', Infinity)];
  const read = (name: string | undefined, fallback: number) => {
    if (!name) return fallback;
    const t = constantTensor(graph, name);
    const values = t ? tensorValues(t) : undefined;
    return values && values.length === 1 ? values[0]! : undefined;
  };
  const lo = read(node.inputs[1], -Infinity);
  const hi = read(node.inputs[2], Infinity);
  return lo === undefined || hi === undefined ? undefined : [lo, hi];
}

/** uint8 asymmetric parameters covering [min(0, lo), max(0, hi)], as onnxruntime computes them. */
function activationParams(r: Range): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, r.min);
  const hi = Math.max(0, r.max);
  const scale = (hi - lo) / 255;
  if (!(scale > 0)) return { scale: 1, zeroPoint: 0 };
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-lo / scale))) };
}

/** Symmetric int8 scales, one per slice along axis 0 (or one for all). */
function weightScales(w: Float32Array, slices: number): Float32Array {
  const per = w.length / slices;
  const scales = new Float32Array(slices);
  for (let s = 0; s < slices; s++) {
    let absMax = 0;
    for (let k = s * per; k < (s + 1) * per; k++) absMax = Math.max(absMax, Math.abs(w[k]!));
    scales[s] = absMax > 0 ? absMax / INT8_MAX : 1;
  }
  return scales;
}

function quantizeWeights(w: Float32Array, scales: Float32Array): Int8Array {
  const per = w.length / scales.length;
  const q = new Int8Array(w.length);
  // Slice by slice: one scale read per output channel, not a division of k per weight.
  for (let s = 0; s < scales.length; s++) {
    const scale = scales[s]!;
    for (let k = s * per; k < (s + 1) * per; k++) q[k] = Math.max(-INT8_MAX, Math.min(INT8_MAX, Math.round(w[k]! / scale)));
  }
  return q;
}

interface Plan {
  /** Weighted nodes whose weights become int8, with the activation input whose scale the bias uses. */
  weighted: Set<OnnxNode>;
  adds: Set<OnnxNode>;
  /** Activations folded away: the node → the activation after it. */
  folded: Map<OnnxNode, OnnxNode>;
  /** Tensors that get their own calibrated Q/DQ pair. */
  calibrated: Set<string>;
  /** Tensors that reuse another's parameters (MaxPool outputs → their input). */
  shared: Map<string, string>;
  keptFloat: { node: string; reason: string }[];
}

function planQuantization(graph: OnnxGraph): Plan {
  const initializers = new Map(graph.initializers.map((t) => [t.name, t]));
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const consumers = new Map<string, OnnxNode[]>();
  for (const n of graph.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const uses = (name: string) => (consumers.get(name)?.length ?? 0) + (graphOutputs.has(name) ? 1 : 0);
  // Shared weights or biases are fine: each node gets its own quantized copy.
  const plan: Plan = { weighted: new Set(), adds: new Set(), folded: new Map(), calibrated: new Set(), shared: new Map(), keptFloat: [] };
  const isActivation = (name: string | undefined) => !!name && !initializers.has(name);

  const weightProblem = (node: OnnxNode): string | undefined => {
    const weight = constantTensor(graph, node.inputs[1]);
    if (!weight) return 'its weights are computed, not constant';
    if (weight.elemType !== 'float32') return `its weights are ${weight.elemType}`;
    if (!isActivation(node.inputs[0])) return 'its input is a constant';
    if (node.opType === 'MatMul' && weight.dims.length !== 2) return `its weight has rank ${weight.dims.length}, not 2`;
    if (node.inputs[2]) {
      const b = constantTensor(graph, node.inputs[2]);
      if (!b || b.elemType !== 'float32') return 'its bias is not a float32 constant';
    }
    return undefined;
  };

  const outputTensor = (node: OnnxNode): string | undefined => {
    const y = node.outputs[0]!;
    if (graphOutputs.has(y)) return undefined;
    const next = consumers.get(y);
    if (next?.length === 1 && uses(y) === 1) {
      const a = next[0]!;
      const bounds = a.opType === 'Clip' ? clipBounds(a, graph) : a.opType === 'Relu' ? [0, Infinity] : undefined;
      // With 0 inside [lo, hi], the output quantization (its range taken on the activation's
      // output, which always includes 0) saturates where the activation clips, to within half a step.
      if (a.domain === '' && bounds && bounds[0] <= 0 && bounds[1] >= 0 && !graphOutputs.has(a.outputs[0]!)) {
        plan.folded.set(node, a);
        return a.outputs[0]!;
      }
    }
    return y;
  };

  for (const node of graph.nodes) {
    if (node.domain !== '') continue;
    let activations: string[];
    if (node.opType === 'Conv' || node.opType === 'MatMul') {
      const problem = weightProblem(node);
      if (problem) {
        plan.keptFloat.push({ node: describeNode(node), reason: problem });
        continue;
      }
      plan.weighted.add(node);
      activations = [node.inputs[0]!];
    } else if (node.opType === 'Add' && isActivation(node.inputs[0]) && isActivation(node.inputs[1])) {
      plan.adds.add(node);
      activations = [node.inputs[0]!, node.inputs[1]!];
    } else continue;
    for (const a of activations) plan.calibrated.add(a);
    const out = outputTensor(node);
    if (out) plan.calibrated.add(out);
  }
  // A MaxPool of a quantized tensor keeps its scale, so onnxruntime runs it on uint8.
  for (const node of graph.nodes) {
    if (node.opType !== 'MaxPool' || node.domain !== '' || node.outputs.filter(Boolean).length !== 1) continue;
    const input = node.inputs[0]!;
    const root = plan.shared.get(input) ?? (plan.calibrated.has(input) ? input : undefined);
    const out = node.outputs[0]!;
    if (!root || graphOutputs.has(out)) continue;
    plan.calibrated.delete(out);
    plan.shared.set(out, root);
  }
  return plan;
}

/** Squeeze and Unsqueeze took `axes` as an attribute before opset 13 and as an input from 13 on. */
const AXES_TO_INPUT = new Set(['Squeeze', 'Unsqueeze']);

function raiseOpset(model: OnnxModel): boolean {
  const opset = defaultOpset(model);
  if (opset >= PER_CHANNEL_OPSET) return true;
  const g = model.graph;
  const raisable = (n: OnnxNode) => n.domain === '' && (SAME_AT_OPSET_13.has(n.opType) || (AXES_TO_INPUT.has(n.opType) && n.inputs.length === 1));
  if (opset < 11 || !g.nodes.every(raisable)) return false;
  const taken = new Set([...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]), ...g.initializers.map((t) => t.name)]);
  g.nodes = g.nodes.map((n) => {
    if (!AXES_TO_INPUT.has(n.opType)) return n;
    const axes = n.attributes.find((a) => a.name === 'axes');
    // Squeeze without axes removes every 1-sized axis, at 13 as before.
    if (axes?.type !== 'ints') return n;
    const name = uniqueName(`${n.name || n.outputs[0]}_axes`, taken);
    g.initializers.push(makeInitializer({ name, type: 'int64', dims: [axes.value.length], data: BigInt64Array.from(axes.value, BigInt) }));
    return makeNode({ op: n.opType, name: n.name || undefined, inputs: [n.inputs[0]!, name], outputs: [...n.outputs] });
  });
  model.opsetImports = model.opsetImports.map((o) => (o.domain === '' || o.domain === 'ai.onnx' ? { ...o, version: PER_CHANNEL_OPSET } : o));
  // Opset 13 belongs to IR version 7.
  model.irVersion = Math.max(model.irVersion, 7);
  return true;
}

function rewrite(model: OnnxModel, plan: Plan, ranges: Map<string, Range>, perChannel: boolean): Record<string, number> {
  const g = model.graph;
  const taken = new Set([
    ...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]),
    ...g.initializers.map((t) => t.name),
    ...g.inputs.map((v) => v.name),
    ...g.outputs.map((v) => v.name),
  ]);
  const added: OnnxTensor[] = [];
  const params = new Map<string, Params>();
  const counts: Record<string, number> = {};
  const count = (op: string) => (counts[op] = (counts[op] ?? 0) + 1);

  for (const t of plan.calibrated) {
    const range = ranges.get(t);
    if (!range) throw new OnnxModelError(`calibrating ${model.source} gave no values for tensor "${t}"; the quantizer cannot place it.`);
    const { scale, zeroPoint } = activationParams(range);
    const p = { scale: uniqueName(`${t}_scale`, taken), zeroPoint: uniqueName(`${t}_zero_point`, taken), scaleValue: scale };
    added.push(
      makeInitializer({ name: p.scale, type: 'float32', dims: [], data: Float32Array.of(scale) }),
      makeInitializer({ name: p.zeroPoint, type: 'uint8', dims: [], data: Uint8Array.of(zeroPoint) }),
    );
    params.set(t, p);
  }
  for (const [t, root] of plan.shared) params.set(t, params.get(root)!);

  const qdq = (floatName: string, tensor: string, p: Params): OnnxNode[] => {
    const quantized = uniqueName(`${tensor}_quantized`, taken);
    return [
      makeNode({ op: 'QuantizeLinear', name: uniqueName(`${tensor}_QuantizeLinear`, taken), inputs: [floatName, p.scale, p.zeroPoint], outputs: [quantized] }),
      makeNode({ op: 'DequantizeLinear', name: uniqueName(`${tensor}_DequantizeLinear`, taken), inputs: [quantized, p.scale, p.zeroPoint], outputs: [tensor] }),
    ];
  };

  const nodes: OnnxNode[] = [];
  const renamedInputs = new Map<string, string>();
  // The image input cannot be renamed: its consumers read the dequantized copy instead.
  for (const input of g.inputs) {
    const p = params.get(input.name);
    if (!p) continue;
    const dq = uniqueName(`${input.name}_dequantized`, taken);
    nodes.push(...qdq(input.name, dq, p));
    renamedInputs.set(input.name, dq);
  }
  const foldedAway = new Set(plan.folded.values());

  for (const node of g.nodes) {
    if (foldedAway.has(node)) continue;
    const inputs = node.inputs.map((i) => renamedInputs.get(i) ?? i);
    let outputs = [...node.outputs];
    const activation = plan.folded.get(node);
    if (activation) outputs = [activation.outputs[0]!, ...outputs.slice(1)];
    const after: OnnxNode[] = [];

    if (plan.weighted.has(node)) {
      const weight = constantTensor(g, node.inputs[1])!;
      const w = float32Data(weight);
      const channelWise = perChannel && node.opType === 'Conv';
      const scales = weightScales(w, channelWise ? weight.dims[0]! : 1);
      const wq = uniqueName(`${weight.name}_quantized`, taken);
      const ws = uniqueName(`${weight.name}_scale`, taken);
      const wz = uniqueName(`${weight.name}_zero_point`, taken);
      const wdq = uniqueName(`${weight.name}_dequantized`, taken);
      const scaleDims = channelWise ? [scales.length] : [];
      added.push(
        makeInitializer({ name: wq, type: 'int8', dims: [...weight.dims], data: quantizeWeights(w, scales) }),
        makeInitializer({ name: ws, type: 'float32', dims: scaleDims, data: scales }),
        makeInitializer({ name: wz, type: 'int8', dims: scaleDims, data: new Int8Array(scales.length) }),
      );
      const axis = channelWise ? { axis: attr.int(0) } : undefined;
      nodes.push(makeNode({ op: 'DequantizeLinear', name: uniqueName(`${weight.name}_DequantizeLinear`, taken), inputs: [wq, ws, wz], outputs: [wdq], attrs: axis }));
      inputs[1] = wdq;

      const biasName = node.inputs[2];
      if (biasName) {
        const b = float32Data(constantTensor(g, biasName)!);
        const inputScale = params.get(node.inputs[0]!)!.scaleValue;
        const bScales = Float32Array.from({ length: b.length }, (_, m) => inputScale * scales[channelWise ? m : 0]!);
        const bq = Int32Array.from(b, (v, m) => Math.round(v / bScales[m]!));
        // A bias too large for int32 at this scale stays float: correct, only not fused.
        if (bq.every((v) => Math.abs(v) <= INT32_MAX)) {
          const bqName = uniqueName(`${biasName}_quantized`, taken);
          const bsName = uniqueName(`${biasName}_scale`, taken);
          const bzName = uniqueName(`${biasName}_zero_point`, taken);
          const bdq = uniqueName(`${biasName}_dequantized`, taken);
          // One scale per channel with per-channel weights, else one for the whole bias.
          const bScaleData = channelWise ? bScales : bScales.subarray(0, 1);
          added.push(
            makeInitializer({ name: bqName, type: 'int32', dims: [b.length], data: bq }),
            makeInitializer({ name: bsName, type: 'float32', dims: scaleDims, data: bScaleData }),
            makeInitializer({ name: bzName, type: 'int32', dims: scaleDims, data: new Int32Array(bScaleData.length) }),
          );
          nodes.push(makeNode({ op: 'DequantizeLinear', name: uniqueName(`${biasName}_DequantizeLinear`, taken), inputs: [bqName, bsName, bzName], outputs: [bdq], attrs: axis }));
          inputs[2] = bdq;
        }
      }
      count(node.opType);
    } else if (plan.adds.has(node)) count('Add');
    else if (node.opType === 'MaxPool' && plan.shared.has(node.outputs[0]!)) count('MaxPool');

    outputs = outputs.map((o) => {
      const p = params.get(o);
      if (!o || !p) return o;
      const floatName = uniqueName(`${o}_float`, taken);
      after.push(...qdq(floatName, o, p));
      return floatName;
    });
    nodes.push(withIO(node, inputs, outputs), ...after);
  }
  g.nodes = nodes;
  g.initializers = [...g.initializers, ...added];
  pruneUnreachable(g);
  return counts;
}

/** Cosine similarity per image (row of each output) between two runs' outputs. */
function cosines(a: Float32Array, b: Float32Array, rows: number): number[] {
  const width = a.length / rows;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = r * width; k < (r + 1) * width; k++) {
      dot += a[k]! * b[k]!;
      na += a[k]! * a[k]!;
      nb += b[k]! * b[k]!;
    }
    out.push(na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb || 1));
  }
  return out;
}

/** int8 against float outputs on `batches`: the float ones from the calibration session, which runs the given float model. */
async function agreement(
  float: Calibrator,
  int8Bytes: Uint8Array,
  inputName: string,
  batches: readonly CalibrationBatch[],
  settings: { intraOpThreads: number | undefined; spinning: boolean },
  source: string,
): Promise<QuantizedModel['agreement']> {
  const ort = await import('onnxruntime-node');
  let quantized: InferenceSession;
  try {
    quantized = await createSession(int8Bytes, { device: 'cpu', ...settings }, `${source} (int8)`);
  } catch (e) {
    throw new OnnxModelError(`the int8 model written for ${source} does not load in onnxruntime (${(e as Error).message.split('\n')[0]}); it was not kept.`);
  }
  try {
    const all: number[] = [];
    for (const batch of batches) {
      const fa = await float.outputs(batch);
      const qa = await quantized.run({ [inputName]: new ort.Tensor('float32', batch.data, batch.dims) });
      for (const [name, x] of Object.entries(fa)) {
        const y = qa[name];
        if (!y || y.type !== 'float32' || x.type !== 'float32') continue;
        all.push(...cosines(x.data as Float32Array, y.data as Float32Array, x.dims[0] ?? 1));
      }
    }
    const mean = all.reduce((s, c) => s + c, 0) / Math.max(1, all.length);
    return { mean, min: Math.min(...all), images: all.length };
  } finally {
    await quantized.release();
  }
}

/** Quantizes a float32 model statically to int8 (QDQ), calibrated on `options.calibration`. */
export async function quantizeModel(modelBytes: Uint8Array, options: QuantizeOptions): Promise<QuantizedModel> {
  const timer = options.timer ?? new PhaseTimer();
  const model = await timer.time('parse', () => parseModel(modelBytes, options.source));
  checkQuantizable(model);
  const { foldedBatchNorms, plan } = await timer.time('plan', () => {
    const folded = foldBatchNorms(model.graph);
    pruneUnreachable(model.graph);
    return { foldedBatchNorms: folded, plan: planQuantization(model.graph) };
  });
  if (plan.weighted.size === 0) {
    const why = plan.keptFloat.length ? `: ${plan.keptFloat[0]!.node} is left float because ${plan.keptFloat[0]!.reason}` : '';
    refuse(model, `it has no Conv or MatMul with constant float weights to quantize${why}`, 'Keep the float model.');
  }
  const settings = { intraOpThreads: options.intraOpThreads, spinning: options.spinning ?? false };
  // Calibrated on the model as given, so the check compares the int8 model with
  // the user's own graph, not with this quantizer's folded copy. Folding renames
  // nothing it keeps (a folded Conv writes its BatchNormalization's output), so
  // every calibrated tensor is one of the given graph's.
  const given = parseModel(modelBytes, options.source);
  const givenTensors = new Set([...given.graph.inputs.map((v) => v.name), ...given.graph.nodes.flatMap((n) => n.outputs)]);
  const unknown = [...plan.calibrated].find((t) => !givenTensors.has(t));
  if (unknown !== undefined) throw new Error(`the quantizer calibrates tensor "${unknown}", which ${model.source} does not compute`);
  const calibrator = await timer.time('calibration', async () => {
    const c = await Calibrator.open(given, [...plan.calibrated], settings);
    try {
      for (const batch of options.calibration) await c.add(batch);
    } catch (e) {
      await c.release();
      throw e;
    }
    return c;
  });
  let bytes: Uint8Array;
  let perChannel: boolean;
  let quantizedNodes: Record<string, number>;
  let agreed: QuantizedModel['agreement'];
  try {
    const ranges = calibrator.ranges();
    ({ perChannel, quantizedNodes } = await timer.time('rewrite', () => {
      const raised = raiseOpset(model);
      return { perChannel: raised, quantizedNodes: rewrite(model, plan, ranges, raised) };
    }));
    bytes = await timer.time('encode', () => encodeModel(model));
    const check = options.check ?? options.calibration.slice(0, 2);
    const inputName = model.graph.inputs[0]!.name;
    agreed = await timer.time('check', () => agreement(calibrator, bytes, inputName, check, settings, model.source));
  } finally {
    await calibrator.release();
  }
  const minCosine = options.minCosine ?? DEFAULT_MIN_COSINE;
  if (!(agreed.mean >= minCosine)) {
    refuse(
      model,
      `its int8 version agrees with the float model only at a mean cosine similarity of ${agreed.mean.toFixed(4)} ` +
        `on ${agreed.images} sample images (at least ${minCosine} is required)`,
      'Keep the float model, or calibrate on more representative images.',
    );
  }
  return {
    bytes,
    quantizedNodes,
    keptFloat: plan.keptFloat,
    foldedBatchNorms,
    foldedActivations: plan.folded.size,
    perChannel,
    opset: defaultOpset(model),
    agreement: agreed,
  };
}
