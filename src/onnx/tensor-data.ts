// Constant tensors: which initializer (or Constant) a name stands for, and
// whole float32 tensors (weights) as typed arrays: tensorValues in model.ts
// reads small tensors into number[], far too slow for 25 million weights.
import { WireType } from './protobuf.js';
import { type OnnxGraph, type OnnxTensor, OnnxModelError, tensorValues } from './model.js';

const RAW_DATA = 9;

export function elementCount(t: OnnxTensor): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

/** A float32 initializer's values (a copy: the protobuf bytes are not 4-byte aligned, and may be a view into a Node Buffer pool). */
export function float32Data(t: OnnxTensor): Float32Array {
  if (t.elemType !== 'float32') throw new OnnxModelError(`tensor "${t.name}" holds ${t.elemType} values, not float32.`);
  const raw = t.fields.find((f) => f.no === RAW_DATA && f.wire === WireType.Bytes);
  const values = raw && raw.wire === WireType.Bytes ? new Float32Array(new Uint8Array(raw.value).buffer) : Float32Array.from(tensorValues(t));
  if (values.length !== elementCount(t)) {
    throw new OnnxModelError(`tensor "${t.name}" has ${values.length} values but its shape [${t.dims.join(', ')}] needs ${elementCount(t)}.`);
  }
  return values;
}

/**
 * The initializer a tensor name stands for, looking through Identity nodes
 * (torch.onnx shares identical constants that way) and Constant nodes, or undefined.
 */
export function constantTensor(graph: OnnxGraph, name: string | undefined): OnnxTensor | undefined {
  for (let hops = 0; name && hops < 8; hops++) {
    const t = graph.initializers.find((x) => x.name === name);
    if (t) return t;
    const producer = graph.nodes.find((n) => n.outputs.includes(name!));
    if (!producer || producer.domain !== '') return undefined;
    if (producer.opType === 'Constant') {
      const value = producer.attributes.find((a) => a.name === 'value');
      return value?.type === 'tensor' ? value.value : undefined;
    }
    if (producer.opType !== 'Identity') return undefined;
    name = producer.inputs[0];
  }
  return undefined;
}
