// `node dist/bench/dequantize.js INT8.onnx FLOAT.onnx`: a QLinear-format int8
// classifier (such as the fixtures' MobileNetV2-int8) rewritten as the float32
// model it stands for: every QLinearConv / QLinearAdd / QLinearMatMul /
// QLinearGlobalAveragePool becomes its float operator on the dequantized
// weights, followed by a Clip to the range its output quantization could
// hold (that saturation is where the int8 model keeps its ReLU6). The only
// pretrained weights this machine has are int8 ones: this gives
// backbone.quantize a float model with real weights to be judged on.
// Bench tooling, never in CI: it handles the operators that model uses.
import { readFile, writeFile } from 'node:fs/promises';
import { attr } from '../src/onnx/builder.js';
import { type OnnxNode, type OnnxTensor, encodeModel, makeInitializer, makeNode, parseModel, tensorValues } from '../src/onnx/model.js';
import { pruneUnreachable } from '../src/onnx/prune.js';

async function main(): Promise<void> {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) throw new Error('usage: node dist/bench/dequantize.js INT8.onnx FLOAT.onnx');
  const model = parseModel(await readFile(input), input);
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const values = (name: string): number[] => {
    const t = inits.get(name);
    if (!t) throw new Error(`${name} is not an initializer`);
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
      case 'QuantizeLinear':
      case 'DequantizeLinear':
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
        if (n.attributes.some((a) => a.name === 'channels_last' && a.value === 1)) throw new Error(`${n.name}: channels_last pooling is not handled`);
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
        if (n.opType.startsWith('QLinear') || n.domain === 'com.microsoft') throw new Error(`${n.opType} "${n.name}" is not handled`);
        nodes.push(n);
    }
  }
  g.nodes = nodes;
  // Recorded shapes name uint8 types for tensors that are float now.
  g.valueInfo = [];
  g.initializers = [...g.initializers, ...added];
  pruneUnreachable(g);
  await writeFile(output, encodeModel(model));
  console.log(`wrote ${output}: ${g.nodes.length} float nodes, ${g.initializers.length} initializers`);
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
