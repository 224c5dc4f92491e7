// Folds inference-mode BatchNormalization into the Conv before it, so that a
// quantized Conv carries the normalisation in its int8 weights (a BN left
// between a Conv and its output quantization would stop onnxruntime from
// fusing the pair into one QLinearConv).
import { type OnnxGraph, type OnnxNode, type OnnxTensor, getAttribute, makeInitializer, makeNode } from './model.js';
import { constantTensor, float32Data } from './tensor-data.js';
import { uniqueName } from './names.js';

const DEFAULT_EPSILON = 1e-5;

function consumerCounts(graph: OnnxGraph): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of graph.nodes) for (const i of node.inputs) if (i) counts.set(i, (counts.get(i) ?? 0) + 1);
  for (const o of graph.outputs) counts.set(o.name, (counts.get(o.name) ?? 0) + 1);
  return counts;
}

/** Folds every Conv → BatchNormalization pair it safely can, in place; returns how many. */
export function foldBatchNorms(graph: OnnxGraph): number {
  const initializers = new Map(graph.initializers.map((t) => [t.name, t]));
  const consumers = consumerCounts(graph);
  const producerOf = new Map<string, OnnxNode>();
  for (const n of graph.nodes) for (const o of n.outputs) producerOf.set(o, n);
  const taken = new Set([...graph.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]), ...initializers.keys()]);
  const replacedConv = new Map<OnnxNode, OnnxNode>();
  const removed = new Set<OnnxNode>();
  const replacedTensors = new Map<string, OnnxTensor>();
  const added: OnnxTensor[] = [];

  for (const bn of graph.nodes) {
    if (bn.opType !== 'BatchNormalization' || bn.domain !== '' || bn.outputs.filter(Boolean).length !== 1) continue;
    const conv = producerOf.get(bn.inputs[0] ?? '');
    if (!conv || conv.opType !== 'Conv' || conv.domain !== '' || replacedConv.has(conv)) continue;
    if (consumers.get(bn.inputs[0]!) !== 1) continue;
    // The normalisation's parameters are only read: they may be shared (through Identity, as torch.onnx writes them).
    const params = bn.inputs.slice(1, 5).map((name) => constantTensor(graph, name));
    const weight = initializers.get(conv.inputs[1] ?? '');
    const bias = conv.inputs[2] ? initializers.get(conv.inputs[2]) : undefined;
    if (params.length !== 4 || params.some((p) => !p || p.elemType !== 'float32') || !weight || weight.elemType !== 'float32') continue;
    if (conv.inputs[2] && (!bias || bias.elemType !== 'float32')) continue;
    // Weights shared with another node cannot take this node's normalisation.
    if (consumers.get(weight.name) !== 1 || (bias && consumers.get(bias.name) !== 1)) continue;
    const [gamma, beta, mean, variance] = params.map((p) => float32Data(p!));
    const channels = weight.dims[0]!;
    if ([gamma, beta, mean, variance].some((p) => p!.length !== channels)) continue;
    const epsilonAttr = getAttribute(bn, 'epsilon');
    const epsilon = epsilonAttr?.type === 'float' ? epsilonAttr.value : DEFAULT_EPSILON;

    const w = float32Data(weight);
    const b = bias ? float32Data(bias) : new Float32Array(channels);
    const perChannel = w.length / channels;
    const foldedW = new Float32Array(w.length);
    const foldedB = new Float32Array(channels);
    for (let m = 0; m < channels; m++) {
      const factor = gamma![m]! / Math.sqrt(variance![m]! + epsilon);
      for (let k = m * perChannel; k < (m + 1) * perChannel; k++) foldedW[k] = w[k]! * factor;
      foldedB[m] = (b[m]! - mean![m]!) * factor + beta![m]!;
    }
    replacedTensors.set(weight.name, makeInitializer({ name: weight.name, type: 'float32', dims: [...weight.dims], data: foldedW }));
    const biasName = bias ? bias.name : uniqueName(`${conv.name || weight.name}_folded_bias`, taken);
    const foldedBias = makeInitializer({ name: biasName, type: 'float32', dims: [channels], data: foldedB });
    if (bias) replacedTensors.set(bias.name, foldedBias);
    else added.push(foldedBias);
    replacedConv.set(
      conv,
      makeNode({
        op: 'Conv',
        name: conv.name,
        inputs: [conv.inputs[0]!, weight.name, biasName],
        outputs: [bn.outputs[0]!],
        attrs: {},
      }),
    );
    removed.add(bn);
  }
  if (removed.size === 0) return 0;
  // The new Conv keeps the old one's attributes: copy its attribute fields across.
  graph.nodes = graph.nodes
    .filter((n) => !removed.has(n))
    .map((n) => {
      const replacement = replacedConv.get(n);
      if (!replacement) return n;
      const attributeFields = n.fields.filter((f) => f.no === 5);
      return { ...replacement, attributes: n.attributes, fields: [...replacement.fields.filter((f) => f.no !== 5), ...attributeFields] };
    });
  graph.initializers = [...graph.initializers.map((t) => replacedTensors.get(t.name) ?? t), ...added];
  return removed.size;
}
