// The trainable top of a backbone: the few operators between the cut and the
// feature vector, as a small list the gradient graph builder understands.
// Convolutions carry their (folded batch-norm) bias; quantized layers arrive
// here dequantized to float32 (src/onnx/dequantize.ts).

export interface ConvOp {
  op: 'conv';
  input: string;
  output: string;
  weight: string;
  bias: string;
  group: number;
  strides: [number, number];
  /** [top, left, bottom, right], ONNX's order. */
  pads: [number, number, number, number];
  dilations: [number, number];
}

/** Clip(min, max); ReLU is min 0, max +Infinity. */
export interface ClipOp {
  op: 'clip';
  input: string;
  output: string;
  min: number;
  max: number;
}

export interface AddOp {
  op: 'add';
  inputs: [string, string];
  output: string;
}

/** Global average pooling: [N, C, H, W] → [N, C]. */
export interface PoolOp {
  op: 'gap';
  input: string;
  output: string;
}

/** [N, C, H, W] → [N, C·H·W]. */
export interface FlattenOp {
  op: 'flatten';
  input: string;
  output: string;
}

export type TopOp = ConvOp | ClipOp | AddOp | PoolOp | FlattenOp;

export interface TopParam {
  name: string;
  dims: number[];
  data: Float32Array;
}

export interface TopNet {
  /** The tensor the top starts from (the cut). */
  input: string;
  /** Its shape without the batch dimension. */
  inputShape: number[];
  /** The tensor that feeds the head: [N, F]. */
  output: string;
  ops: TopOp[];
  params: TopParam[];
}

/** Output shape of a convolution (ONNX's NOTSET padding). */
export function convOutputShape(op: ConvOp, input: readonly number[], weightDims: readonly number[]): number[] {
  const [, H, W] = input as [number, number, number];
  const [M, , kh, kw] = weightDims as [number, number, number, number];
  const out = (size: number, k: number, s: number, d: number, p0: number, p1: number) => Math.floor((size + p0 + p1 - d * (k - 1) - 1) / s) + 1;
  return [M, out(H, kh, op.strides[0], op.dilations[0], op.pads[0], op.pads[2]), out(W, kw, op.strides[1], op.dilations[1], op.pads[1], op.pads[3])];
}

/** The shape (batch dimension dropped) of every tensor of the top, checked op by op. */
export function topShapes(net: TopNet): Map<string, number[]> {
  const shapes = new Map<string, number[]>([[net.input, [...net.inputShape]]]);
  const params = new Map(net.params.map((p) => [p.name, p]));
  const get = (name: string, by: TopOp): number[] => {
    const s = shapes.get(name);
    if (!s) throw new RangeError(`the top's ${by.op} producing "${by.output}" reads "${name}", which nothing before it computes`);
    return s;
  };
  for (const op of net.ops) {
    switch (op.op) {
      case 'conv': {
        const x = get(op.input, op);
        const w = params.get(op.weight);
        const b = params.get(op.bias);
        if (!w || w.dims.length !== 4) throw new RangeError(`conv "${op.output}": weight "${op.weight}" is not a 4-D parameter`);
        if (x.length !== 3 || x[0] !== w.dims[1]! * op.group) {
          throw new RangeError(`conv "${op.output}": input [${x}] has ${x[0]} channels, the weight [${w.dims}] with group ${op.group} takes ${w.dims[1]! * op.group}`);
        }
        if (!b || b.dims.length !== 1 || b.dims[0] !== w.dims[0]) throw new RangeError(`conv "${op.output}": bias "${op.bias}" does not match ${w.dims[0]} output channels`);
        shapes.set(op.output, convOutputShape(op, x, w.dims));
        break;
      }
      case 'clip':
        shapes.set(op.output, get(op.input, op));
        break;
      case 'add': {
        const [a, b] = [get(op.inputs[0], op), get(op.inputs[1], op)];
        if (a.join() !== b.join()) throw new RangeError(`add "${op.output}": shapes [${a}] and [${b}] differ (broadcasting adds are not trainable here)`);
        shapes.set(op.output, a);
        break;
      }
      case 'gap': {
        const x = get(op.input, op);
        if (x.length !== 3) throw new RangeError(`global pooling "${op.output}" needs a [C, H, W] map, got [${x}]`);
        shapes.set(op.output, [x[0]!]);
        break;
      }
      case 'flatten': {
        const x = get(op.input, op);
        shapes.set(op.output, [x.reduce((a, b) => a * b, 1)]);
        break;
      }
    }
  }
  const out = shapes.get(net.output);
  if (!out || out.length !== 1) throw new RangeError(`the top's output "${net.output}" is not a flat feature vector (shape [${out ?? '?'}])`);
  return shapes;
}

export const elements = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);
