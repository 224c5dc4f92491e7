// Removes what no graph output depends on: after a cut, the old head's nodes,
// weights and shape records.
import { type OnnxGraph, subgraphReferences } from './model.js';

/** Prunes `graph` in place, walking back from its outputs; returns how many nodes went. */
export function pruneUnreachable(graph: OnnxGraph): number {
  const needed = new Set(graph.outputs.map((o) => o.name));
  const kept = new Array<boolean>(graph.nodes.length).fill(false);
  // Nodes are in topological order, so one backward sweep finds every dependency.
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (!node.outputs.some((o) => o && needed.has(o))) continue;
    kept[i] = true;
    for (const input of node.inputs) if (input) needed.add(input);
    for (const reference of subgraphReferences(node)) needed.add(reference);
  }
  const before = graph.nodes.length;
  graph.nodes = graph.nodes.filter((_, i) => kept[i]);
  const defined = new Set(graph.nodes.flatMap((n) => n.outputs));
  graph.initializers = graph.initializers.filter((t) => needed.has(t.name));
  graph.initializerInputs = graph.initializerInputs.filter((v) => needed.has(v.name));
  graph.inputs = graph.inputs.filter((v) => needed.has(v.name));
  graph.valueInfo = graph.valueInfo.filter((v) => defined.has(v.name) && needed.has(v.name));
  return before - graph.nodes.length;
}
