// The frozen bottom and the trained top in one feature extractor: the top's
// float32 forward pass appended after the bottom's output (the flat
// activations), its trained parameters as initializers, the output the
// feature vector [N, F] that src/onnx/merge.ts joins to the head.
import { type OnnxModel, OnnxModelError, defaultOpset, encodeModel, makeInitializer, makeNode, makeValueInfo, parseModel } from '../onnx/model.js';
import { uniqueName } from '../onnx/names.js';
import { ftIo, topFeatureNodes } from './graph.js';
import type { TopNet } from './top.js';

function namesInUse(model: OnnxModel): Set<string> {
  const g = model.graph;
  return new Set([...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]), ...g.initializers.map((t) => t.name), ...g.inputs.map((v) => v.name), ...g.outputs.map((v) => v.name)]);
}

export function attachTop(bottomBytes: Uint8Array, top: TopNet, featureWidth: number, source = 'the frozen bottom'): Uint8Array {
  const model = parseModel(bottomBytes, source);
  if (defaultOpset(model) < 11) throw new OnnxModelError(`${source} uses ONNX opset ${defaultOpset(model)}; the fine-tuned top needs 11 or later (Clip with bounds as inputs).`);
  const activations = model.graph.outputs[0];
  if (model.graph.outputs.length !== 1 || !activations) throw new OnnxModelError(`${source} should have one output, the activations at the cut`);
  const taken = namesInUse(model);
  const renamed = new Map<string, string>([[ftIo.activations, activations.name]]);
  const rename = (name: string) => {
    if (!name) return name;
    let to = renamed.get(name);
    if (!to) renamed.set(name, (to = uniqueName(`tlpipe_top.${name}`, taken)));
    return to;
  };
  const { nodes, initializers } = topFeatureNodes(top, featureWidth);
  model.graph.nodes.push(...nodes.map((n) => makeNode({ ...n, name: rename(n.name ?? n.outputs[0]!), inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) })));
  model.graph.initializers.push(
    ...initializers.map((t) => makeInitializer({ ...t, name: rename(t.name) })),
    ...top.params.map((p) => makeInitializer({ name: rename(p.name), type: 'float32', dims: p.dims, data: p.data })),
  );
  const batch = activations.dims?.[0] ?? 'batch';
  model.graph.outputs = [makeValueInfo({ name: rename(ftIo.features), type: 'float32', dims: [batch ?? 'batch', featureWidth] })];
  return encodeModel(model);
}
