// Splits a backbone at a cut into a frozen bottom and a trainable top:
//  - the bottom is the backbone cut at that tensor (src/onnx/cut.ts): it stays
//    as it is (int8 stays int8), its output the cut's activations, dequantized
//    and flattened;
//  - the top is the part from the cut to the feature vector, as the small
//    operator list of src/finetune/top.ts, quantized layers dequantized to
//    float32 and batch norms folded into their convolutions.
// Cut points are tensors every path from the image to the features passes
// through; among them, block boundaries are where a residual connection starts
// or ends (an Add, the activation right after one, a tensor two operators
// read), so `trainableBlocks: N` means the last N residual-delimited blocks,
// with the convolutions after the last one (MobileNetV2's 1×1 to 1280) in the top.
import { cutAtFeatures, type FeatureModel } from '../onnx/cut.js';
import { dequantizeModel, isQuantized } from '../onnx/dequantize.js';
import { foldBatchNorms } from '../onnx/fold-batchnorm.js';
import { findClassifierHead } from '../onnx/head.js';
import { describeImageInput, type ImageInput } from '../onnx/inspect.js';
import { type OnnxGraph, type OnnxModel, type OnnxNode, OnnxModelError, describeNode, encodeModel, getAttribute, intAttribute, intsAttribute, makeValueInfo, parseModel, defaultOpset, tensorValues } from '../onnx/model.js';
import { ShapeFacts } from '../onnx/shapes.js';
import { quantizationOf } from '../onnx/quantization.js';
import { constantTensor, float32Data } from '../onnx/tensor-data.js';
import type { TopNet, TopOp, TopParam } from './top.js';
import { topShapes } from './top.js';

export interface CutCandidate {
  tensor: string;
  /** Blocks above it: trainableBlocks = this value cuts here. */
  blocksAbove: number;
  /** Convolutions above it. */
  convsAbove: number;
}

export interface SplitOptions {
  /** The last N blocks train. */
  trainableBlocks?: number;
  /** Cut at this tensor instead. */
  tensor?: string;
  source?: string;
}

export interface SplitBackbone {
  bottom: FeatureModel;
  top: TopNet;
  cutTensor: string;
  /** Every block boundary, the top-most first. */
  candidates: CutCandidate[];
  quantized: boolean;
  featureWidth: number;
  /** The cut tensor's 8-bit quantization, when the bottom produces quantized activations. */
  codes?: { type: 'uint8' | 'int8'; scale: number; zeroPoint: number };
}

/** Operators that only reshape or pass a value on (at inference). */
const PASS_THROUGH = new Set(['Identity', 'Dropout', 'Flatten', 'Reshape', 'Squeeze']);

/** Inputs of a node that carry data (not a Reshape's shape, not constants). */
function dataInputs(node: OnnxNode, constant: (name: string) => boolean): string[] {
  if (node.opType === 'Reshape' || node.opType === 'Squeeze' || node.opType === 'Clip' || node.opType === 'Dropout') return node.inputs.slice(0, 1).filter(Boolean);
  return node.inputs.filter((i) => i && !constant(i));
}

interface Trunk {
  nodes: OnnxNode[];
  /** Data inputs of each node in `nodes`. */
  inputs: string[][];
}

/** The nodes the feature tensor depends on through data inputs, in graph order. */
function trunkOf(graph: OnnxGraph, featureTensor: string, constant: (name: string) => boolean): Trunk {
  const needed = new Set([featureTensor]);
  const kept: OnnxNode[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (!node.outputs.some((o) => needed.has(o))) continue;
    kept.push(node);
    for (const input of dataInputs(node, constant)) needed.add(input);
  }
  kept.reverse();
  return { nodes: kept, inputs: kept.map((n) => dataInputs(n, constant)) };
}

/** Tensors every path from the image to the features passes through, in order (the image input excluded). */
function articulationPoints(trunk: Trunk, featureTensor: string): string[] {
  const lastUse = new Map<string, number>();
  trunk.inputs.forEach((ins, i) => ins.forEach((t) => lastUse.set(t, i)));
  const live = new Set<string>();
  const points: string[] = [];
  trunk.nodes.forEach((node, i) => {
    for (const t of trunk.inputs[i]!) if (lastUse.get(t) === i) live.delete(t);
    for (const o of node.outputs) if (o && ((lastUse.get(o) ?? -1) > i || o === featureTensor)) live.add(o);
    if (live.size === 1) points.push([...live][0]!);
  });
  return points;
}

function consumerCounts(trunk: Trunk): Map<string, number> {
  const counts = new Map<string, number>();
  for (const ins of trunk.inputs) for (const t of new Set(ins)) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

/** Block boundaries among the cut points, the top-most first, with how much lies above each. */
function blockBoundaries(trunk: Trunk, points: string[], featureTensor: string, exists: (t: string) => boolean): CutCandidate[] {
  const producer = new Map<string, OnnxNode>();
  for (const n of trunk.nodes) for (const o of n.outputs) producer.set(o, n);
  const counts = consumerCounts(trunk);
  const isAdd = (t: string) => producer.get(t)?.opType === 'Add';
  const consumers = new Map<string, OnnxNode[]>();
  trunk.inputs.forEach((ins, i) => ins.forEach((t) => consumers.set(t, [...(consumers.get(t) ?? []), trunk.nodes[i]!])));
  const boundary = (t: string) => {
    const p = producer.get(t);
    if (!p || t === featureTensor) return false;
    // A block ends after its activation, not before it.
    const next = consumers.get(t) ?? [];
    if (next.length === 1 && (next[0]!.opType === 'Relu' || next[0]!.opType === 'Clip')) return false;
    if ((counts.get(t) ?? 0) >= 2 || isAdd(t)) return true;
    return (p.opType === 'Relu' || p.opType === 'Clip') && isAdd(p.inputs[0] ?? '');
  };
  const order = new Map(trunk.nodes.map((n, i) => [n, i]));
  const convAt = trunk.nodes.map((n) => (n.opType === 'Conv' ? 1 : 0));
  const convsAfter = (t: string) => convAt.slice(order.get(producer.get(t)!)! + 1).reduce((a: number, b) => a + b, 0);
  const found = points.filter((t) => exists(t) && boundary(t)).filter((t) => convsAfter(t) > 0);
  return found.reverse().map((tensor, i) => ({ tensor, blocksAbove: i + 1, convsAbove: convsAfter(tensor) }));
}

function describeCandidates(candidates: CutCandidate[]): string {
  const shown = candidates.slice(0, 8).map((c) => `"${c.tensor}" (${c.blocksAbove} block${c.blocksAbove === 1 ? '' : 's'}, ${c.convsAbove} convolutions above)`);
  return shown.join(', ') + (candidates.length > 8 ? `, … ${candidates.length} in all` : '');
}

function floatConstant(graph: OnnxGraph, name: string | undefined, what: string): TopParam | undefined {
  if (!name) return undefined;
  const t = constantTensor(graph, name);
  if (!t) throw new OnnxModelError(`${what} "${name}" is not a constant: only convolutions with constant weights can be fine-tuned`);
  return { name, dims: [...t.dims], data: float32Data(t) };
}

function scalarOf(graph: OnnxGraph, name: string | undefined, fallback: number): number {
  if (!name) return fallback;
  const t = constantTensor(graph, name);
  if (!t) throw new OnnxModelError(`a Clip bound "${name}" is not a constant`);
  return float32Data(t)[0] ?? fallback;
}

/** The top, from the cut to the feature tensor, as trainable operators. */
function extractTop(model: OnnxModel, trunk: Trunk, cut: string, featureTensor: string, inputShape: number[], candidates: string): TopNet {
  const graph = model.graph;
  const start = trunk.nodes.findIndex((n) => n.outputs.includes(cut));
  const nodes = trunk.nodes.slice(start + 1);
  const ops: TopOp[] = [];
  const params: TopParam[] = [];
  // Pass-through nodes make aliases, and reshapes after a pooling are already flat.
  const alias = new Map<string, string>();
  const name = (t: string) => alias.get(t) ?? t;
  const flat = new Set<string>();
  let convs = 0;
  const unsupported = (node: OnnxNode, why: string) =>
    new OnnxModelError(`fine-tuning cannot train ${describeNode(node)} above the cut "${cut}" (${why}). Cut higher: ${candidates}.`);
  for (const node of nodes) {
    const x = name(node.inputs[0] ?? '');
    const out = node.outputs[0]!;
    switch (node.opType) {
      case 'Conv': {
        const autoPad = getAttribute(node, 'auto_pad');
        if (autoPad?.type === 'string' && autoPad.value !== 'NOTSET') throw unsupported(node, `auto_pad ${autoPad.value}`);
        const k = convs++;
        const weight = floatConstant(graph, node.inputs[1], 'the weight')!;
        if (weight.dims.length !== 4) throw unsupported(node, 'not a 2-D convolution');
        const bias = floatConstant(graph, node.inputs[2], 'the bias') ?? { name: '', dims: [weight.dims[0]!], data: new Float32Array(weight.dims[0]!) };
        const w = { ...weight, name: `block.${k}.weight` };
        const b = { ...bias, name: `block.${k}.bias` };
        params.push(w, b);
        const pads = intsAttribute(node, 'pads') ?? [0, 0, 0, 0];
        ops.push({
          op: 'conv', input: x, output: out, weight: w.name, bias: b.name,
          group: intAttribute(node, 'group') ?? 1,
          strides: (intsAttribute(node, 'strides') ?? [1, 1]) as [number, number],
          pads: pads as [number, number, number, number],
          dilations: (intsAttribute(node, 'dilations') ?? [1, 1]) as [number, number],
        });
        break;
      }
      case 'Relu':
        ops.push({ op: 'clip', input: x, output: out, min: 0, max: Infinity });
        if (flat.has(x)) flat.add(out);
        break;
      case 'Clip': {
        const old = defaultOpset(model) < 11;
        const attrMin = getAttribute(node, 'min');
        const attrMax = getAttribute(node, 'max');
        const min = old ? (attrMin?.type === 'float' ? attrMin.value : -Infinity) : scalarOf(graph, node.inputs[1], -Infinity);
        const max = old ? (attrMax?.type === 'float' ? attrMax.value : Infinity) : scalarOf(graph, node.inputs[2], Infinity);
        ops.push({ op: 'clip', input: x, output: out, min, max });
        if (flat.has(x)) flat.add(out);
        break;
      }
      case 'Add': {
        const [a, b] = [node.inputs[0] ?? '', node.inputs[1] ?? ''];
        if (constantTensor(graph, a) || constantTensor(graph, b)) throw unsupported(node, 'an Add of a constant');
        ops.push({ op: 'add', inputs: [name(a), name(b)], output: out });
        break;
      }
      case 'GlobalAveragePool':
      case 'ReduceMean': {
        if (node.opType === 'ReduceMean') {
          const axes = intsAttribute(node, 'axes') ?? (node.inputs[1] ? integerConstant(graph, node.inputs[1]) : null);
          if (!axes || axes.map((a) => (a + 4) % 4).sort().join() !== '2,3') throw unsupported(node, 'a mean over other axes than the spatial ones');
        }
        ops.push({ op: 'gap', input: x, output: out });
        flat.add(out);
        break;
      }
      default:
        if (!PASS_THROUGH.has(node.opType)) throw unsupported(node, `the operator ${node.opType} has no gradient here`);
        if (node.opType === 'Flatten' && !flat.has(x)) {
          ops.push({ op: 'flatten', input: x, output: out });
          flat.add(out);
        } else {
          alias.set(out, x);
          if (flat.has(x)) flat.add(out);
        }
    }
  }
  const output = name(featureTensor);
  if (!flat.has(output)) throw new OnnxModelError(`the top from "${cut}" to the features "${featureTensor}" does not end in a pooling or a flatten; cut elsewhere: ${candidates}`);
  const top: TopNet = { input: cut, inputShape, output, ops, params };
  topShapes(top);
  return top;
}

/** An integer constant's values (ReduceMean's axes input from opset 18). */
function integerConstant(graph: OnnxGraph, name: string): number[] | null {
  const t = constantTensor(graph, name);
  return t ? tensorValues(t) : null;
}

/** The shape of `tensor` (batch dropped), from one run of the float model on a zero image. */
async function probeShape(model: OnnxModel, image: ImageInput, tensor: string): Promise<number[]> {
  const probe = parseModel(encodeModel(model), model.source);
  probe.graph.outputs = [makeValueInfo({ name: tensor, type: 'float32', dims: ['n', 'c', 'h', 'w'] })];
  probe.graph.valueInfo = [];
  const { pruneUnreachable } = await import('../onnx/prune.js');
  pruneUnreachable(probe.graph);
  const [ort, runtime] = await Promise.all([import('onnxruntime-node'), import('../onnx/runtime.js')]);
  const h = image.height ?? 224;
  const w = image.width ?? 224;
  const dims = image.layout === 'NCHW' ? [1, 3, h, w] : [1, h, w, 3];
  const session = await runtime.createSession(encodeModel(probe), { device: 'cpu', quiet: true }, `${model.source} up to "${tensor}"`);
  try {
    const out = await session.run({ [image.name]: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) });
    return [...out[tensor]!.dims].slice(1);
  } finally {
    await session.release();
  }
}

/** Per-tensor 8-bit quantization of the cut, read from the bottom's graph (per-channel cuts are stored as float). */
function cutCodes(model: OnnxModel, cut: string): SplitBackbone['codes'] {
  const q = quantizationOf(model.graph, cut);
  if (!q) return undefined;
  const scale = constantTensor(model.graph, q.scale);
  const zero = q.zeroPoint ? constantTensor(model.graph, q.zeroPoint) : undefined;
  if (!scale || tensorValues(scale).length !== 1) return undefined;
  const type = zero?.elemType === 'int8' ? 'int8' : 'uint8';
  return { type, scale: tensorValues(scale)[0]!, zeroPoint: zero ? tensorValues(zero)[0]! : 0 };
}

export async function splitBackbone(bytes: Uint8Array, options: SplitOptions): Promise<SplitBackbone> {
  const source = options.source ?? 'the backbone';
  const original = parseModel(bytes, source);
  const image = describeImageInput(original);
  if (image.layout !== 'NCHW') throw new OnnxModelError(`${source} takes channels-last (NHWC) images; fine-tuning handles NCHW backbones only.`);
  const head = findClassifierHead(original, image.layout, new ShapeFacts(original.graph));
  if (!head) throw new OnnxModelError(`could not find the classification head of ${source}, so there is no feature vector to fine-tune towards.`);

  const float = parseModel(bytes, source);
  const quantized = isQuantized(float);
  if (quantized) dequantizeModel(float);
  foldBatchNorms(float.graph);
  const constant = (t: string) => constantTensor(float.graph, t) !== undefined;
  const trunk = trunkOf(float.graph, head.featureTensor, constant);
  const points = articulationPoints(trunk, head.featureTensor);
  const originalTensors = new Set(original.graph.nodes.flatMap((n) => n.outputs));
  const candidates = blockBoundaries(trunk, points, head.featureTensor, (t) => originalTensors.has(t));
  const listed = candidates.length ? `the block boundaries are ${describeCandidates(candidates)}` : 'no block boundary was found';

  let cut: string;
  if (options.tensor !== undefined) {
    cut = options.tensor;
    if (!points.includes(cut) || cut === head.featureTensor || !originalTensors.has(cut)) {
      const known = trunk.nodes.some((n) => n.outputs.includes(cut));
      throw new OnnxModelError(
        `cannot fine-tune ${source} from "${cut}": ${known ? 'some path from the image to the features goes around it (a residual connection crosses it)' : 'no tensor of that name lies between the image and the features'}; ${listed}.`,
      );
    }
  } else {
    const n = options.trainableBlocks ?? 1;
    const candidate = candidates[n - 1];
    if (!candidate) throw new OnnxModelError(`${source} has ${candidates.length} block${candidates.length === 1 ? '' : 's'} to unfreeze, not ${n}: ${listed}. Give a smaller trainableBlocks, or a tensor.`);
    cut = candidate.tensor;
  }
  const inputShape = await probeShape(float, image, cut);
  if (inputShape.length !== 3) throw new OnnxModelError(`the cut "${cut}" of ${source} is not a [C, H, W] feature map (shape [${inputShape}]); ${listed}.`);
  const top = extractTop(float, trunk, cut, head.featureTensor, inputShape, listed);
  const bottom = await cutAtFeatures(bytes, { tensor: cut, source });
  const featureWidth = topShapes(top).get(top.output)![0]!;
  return { bottom, top, cutTensor: cut, candidates, quantized, featureWidth, codes: cutCodes(original, cut) };
}
