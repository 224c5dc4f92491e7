// A quantized classifier rewritten as the float32 model it stands for: every
// QLinearConv / QLinearAdd / QLinearMatMul / QLinearGlobalAveragePool becomes
// its float operator on the dequantized weights, followed by a Clip to the
// range its output quantization could hold (that saturation is where an int8
// model keeps its ReLU6). QDQ graphs: a DequantizeLinear of a constant weight
// becomes the float weight; on activations, QuantizeLinear and
// DequantizeLinear become identities. Fine-tuning trains the top of a
// quantized backbone in this form; the bench makes float models from it.
import { attr } from './builder.js';
import { type OnnxModel, type OnnxNode, type OnnxTensor, OnnxModelError, makeInitializer, makeNode, tensorValues } from './model.js';
import { pruneUnreachable } from './prune.js';

/** Whether the graph holds quantized operators (QLinear*, or QDQ pairs). */
export function isQuantized(model: OnnxModel): boolean {
  return model.graph.nodes.some((n) => n.opType.startsWith('QLinear') || n.opType === 'DequantizeLinear' || n.opType === 'QuantizeLinear');
}

/** Rewrites `model` in place as float32; tensor names are kept (a quantized tensor's name now holds its float value). */
export function dequantizeModel(model: OnnxModel): void {
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const values = (name: string): number[] => {
    const t = inits.get(name);
    if (!t) throw new OnnxModelError(`${model.source}: "${name}" is not a constant, so it cannot be dequantized`);
    return tensorValues(t);
  };
  const scalar = (name: string) => values(name)[0]!;
  const added: OnnxTensor[] = [];
  const floatTensor = (name: string, dims: number[], data: Float32Array) => {
    added.push(makeInitializer({ name, type: 'float32', dims, data }));
    return name;
  };
  /** The float range a uint8/int8 output with this scale and zero point can hold. */
  const clipTo = (out: string, scaleName: string, zeroName: string, type: string, from: string): OnnxNode[] => {
    const [s, z] = [scalar(scaleName), scalar(zeroName)];
    const [qmin, qmax] = type === 'int8' ? [-128, 127] : [0, 255];
    const lo = floatTensor(`${out}_lo`, [], Float32Array.of((qmin - z) * s));
    const hi = floatTensor(`${out}_hi`, [], Float32Array.of((qmax - z) * s));
    return [makeNode({ op: 'Clip', name: `${out}_clip`, inputs: [from, lo, hi], outputs: [out] })];
  };
  const zeroType = (name: string) => inits.get(name)?.elemType ?? 'uint8';
  const nodes: OnnxNode[] = [];
  for (const n of g.nodes) {
    const attrs = Object.fromEntries(
      n.attributes.filter((a) => a.type === 'ints' || a.type === 'int').map((a) => [a.name, a.type === 'ints' ? attr.ints(a.value as number[]) : attr.int(a.value as number)]),
    );
    const out = n.outputs[0]!;
    switch (n.opType) {
      case 'DequantizeLinear': {
        const t = inits.get(n.inputs[0]!);
        if (t) {
          // A QDQ weight: its float values, per tensor or per output channel (axis 0 or 1).
          const [q, sv] = [values(t.name), values(n.inputs[1]!)];
          const zv = n.inputs[2] ? values(n.inputs[2]) : [0];
          const axisAttr = n.attributes.find((a) => a.name === 'axis');
          const axis = axisAttr?.type === 'int' ? (axisAttr.value + t.dims.length) % t.dims.length : 1;
          const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
          const channels = t.dims[axis] ?? 1;
          const at = (k: number) => (sv.length === 1 ? 0 : Math.floor(k / inner) % channels);
          added.push(makeInitializer({ name: out, type: 'float32', dims: [...t.dims], data: Float32Array.from(q, (v, k) => (v - zv[zv.length === 1 ? 0 : at(k)]!) * sv[at(k)]!) }));
          break;
        }
        nodes.push(makeNode({ op: 'Identity', name: n.name, inputs: [n.inputs[0]!], outputs: [out] }));
        break;
      }
      case 'QuantizeLinear':
        nodes.push(makeNode({ op: 'Identity', name: n.name, inputs: [n.inputs[0]!], outputs: [out] }));
        break;
      case 'QLinearConv': {
        const [x, xs, , w, ws, wz, ys, yz, b] = n.inputs;
        const wt = inits.get(w!)!;
        const [wv, wsv, wzv] = [values(w!), values(ws!), values(wz!)];
        const m = wt.dims[0]!;
        const per = wv.length / m;
        const wf = Float32Array.from(wv, (q, k) => {
          const c = wsv.length === 1 ? 0 : Math.floor(k / per);
          return (q - wzv[c]!) * wsv[c]!;
        });
        const inputs = [x!, floatTensor(`${w}_float`, [...wt.dims], wf)];
        if (b) {
          const xsv = scalar(xs!);
          inputs.push(floatTensor(`${b}_float`, [m], Float32Array.from(values(b), (q, c) => q * xsv * wsv[wsv.length === 1 ? 0 : c]!)));
        }
        nodes.push(makeNode({ op: 'Conv', name: n.name, inputs, outputs: [`${out}_raw`], attrs }));
        nodes.push(...clipTo(out, ys!, yz!, zeroType(yz!), `${out}_raw`));
        break;
      }
      case 'QLinearAdd': {
        const [a, as, az, b, bs, bz, cs, cz] = n.inputs;
        // A constant operand (a bias) is dequantized; activations are float already.
        const operand = (x: string, xs: string, xz: string) => {
          const t = inits.get(x);
          if (!t) return x;
          const [q, sv, zv] = [values(x), values(xs), values(xz)];
          return floatTensor(`${x}_float`, [...t.dims], Float32Array.from(q, (v, k) => (v - zv[sv.length === 1 ? 0 : k]!) * sv[sv.length === 1 ? 0 : k]!));
        };
        nodes.push(makeNode({ op: 'Add', name: n.name, inputs: [operand(a!, as!, az!), operand(b!, bs!, bz!)], outputs: [`${out}_raw`] }));
        nodes.push(...clipTo(out, cs!, cz!, zeroType(cz!), `${out}_raw`));
        break;
      }
      case 'QLinearGlobalAveragePool': {
        if (n.attributes.some((a) => a.name === 'channels_last' && a.value === 1)) throw new OnnxModelError(`${model.source}: channels-last pooling "${n.name}" cannot be dequantized`);
        const [x, , , ys, yz] = n.inputs;
        nodes.push(makeNode({ op: 'GlobalAveragePool', name: n.name, inputs: [x!], outputs: [`${out}_raw`] }));
        nodes.push(...clipTo(out, ys!, yz!, zeroType(yz!), `${out}_raw`));
        break;
      }
      case 'QLinearMatMul': {
        const [a, , , b, bs, bz, ys, yz] = n.inputs;
        const bt = inits.get(b!)!;
        const [bv, bsv, bzv] = [values(b!), values(bs!), values(bz!)];
        const cols = bt.dims[1]!;
        const bf = Float32Array.from(bv, (q, k) => {
          const c = bsv.length === 1 ? 0 : k % cols;
          return (q - bzv[c]!) * bsv[c]!;
        });
        nodes.push(makeNode({ op: 'MatMul', name: n.name, inputs: [a!, floatTensor(`${b}_float`, [...bt.dims], bf)], outputs: [`${out}_raw`] }));
        nodes.push(...clipTo(out, ys!, yz!, zeroType(yz!), `${out}_raw`));
        break;
      }
      default:
        if (n.opType.startsWith('QLinear') || n.domain === 'com.microsoft') throw new OnnxModelError(`${model.source}: the quantized operator ${n.opType} "${n.name}" cannot be dequantized`);
        nodes.push(n);
    }
  }
  g.nodes = nodes;
  // Recorded shapes name uint8 types for tensors that are float now.
  g.valueInfo = [];
  g.initializers = [...g.initializers, ...added];
  pruneUnreachable(g);
}
