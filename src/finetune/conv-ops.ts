// A convolution and its two gradients as ONNX subgraphs, in two builds:
//  - float32: onnxruntime's own operators (Conv; ConvTranspose for the input
//    gradient; Conv with batch and channel axes swapped for the weight
//    gradient), which run on the CPU and CUDA providers;
//  - float64: onnxruntime has no double Conv or ConvTranspose kernels, so the
//    reference build writes the convolution as a product with a constant 0/1
//    tensor S (y = x·T with T = W·S) and both gradients as its exact adjoints.
//    That build is what finite differences check; the float32 operators are
//    checked against it (test/finetune-graph.test.ts).
import { attr } from '../onnx/builder.js';
import type { GraphWriter } from '../train/graph.js';
import { type ConvOp, convOutputShape, elements } from './top.js';

export interface ConvGeometry {
  op: ConvOp;
  /** [C, H, W] of the input. */
  input: number[];
  /** [M, C/group, kh, kw]. */
  weight: number[];
  /** [M, Ho, Wo]. */
  output: number[];
}

export function convGeometry(op: ConvOp, input: number[], weight: number[]): ConvGeometry {
  return { op, input, weight, output: convOutputShape(op, input, weight) };
}

const convAttrs = (c: ConvGeometry) => ({
  group: attr.int(c.op.group),
  strides: attr.ints(c.op.strides),
  pads: attr.ints(c.op.pads),
  dilations: attr.ints(c.op.dilations),
  kernel_shape: attr.ints(c.weight.slice(2)),
});

/**
 * The 0/1 tensor S [K, I·O] of the float64 build: S[k, i, o] = 1 when weight
 * element k multiplies input element i in output element o (one sample).
 */
function selection(c: ConvGeometry): Float64Array {
  const [C, H, W] = c.input as [number, number, number];
  const [M, cig, kh, kw] = c.weight as [number, number, number, number];
  const [, Ho, Wo] = c.output as [number, number, number];
  const I = C * H * W;
  const O = M * Ho * Wo;
  const S = new Float64Array(elements(c.weight) * I * O);
  const cog = M / c.op.group;
  const [sh, sw] = c.op.strides;
  const [dh, dw] = c.op.dilations;
  const [pt, pl] = c.op.pads;
  for (let m = 0; m < M; m++) {
    const group = Math.floor(m / cog);
    for (let ci = 0; ci < cig; ci++) {
      const channel = group * cig + ci;
      for (let ky = 0; ky < kh; ky++)
        for (let kx = 0; kx < kw; kx++) {
          const k = ((m * cig + ci) * kh + ky) * kw + kx;
          for (let oy = 0; oy < Ho; oy++)
            for (let ox = 0; ox < Wo; ox++) {
              const iy = oy * sh - pt + ky * dh;
              const ix = ox * sw - pl + kx * dw;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              const i = (channel * H + iy) * W + ix;
              const o = (m * Ho + oy) * Wo + ox;
              S[(k * I + i) * O + o] = 1;
            }
        }
    }
  }
  return S;
}

/** Reference-build helpers: the constant S and the per-sample matrix T = W·S [I, O]. */
class Reference {
  private readonly s = new Map<ConvGeometry, string>();
  constructor(private readonly g: GraphWriter) {}

  S(c: ConvGeometry): string {
    let name = this.s.get(c);
    if (!name) {
      name = `conv_selection_${this.s.size}_${c.op.output}`;
      const I = elements(c.input);
      const O = elements(c.output);
      this.g.initializers.push({ name, type: 'float64', dims: [elements(c.weight), I * O], data: selection(c) });
      this.s.set(c, name);
    }
    return name;
  }

  T(c: ConvGeometry, weight: string): string {
    const g = this.g;
    const flat = g.op('Reshape', [weight, g.int64s([1, elements(c.weight)])]);
    return g.op('Reshape', [g.op('MatMul', [flat, this.S(c)]), g.int64s([elements(c.input), elements(c.output)])]);
  }
}

const references = new WeakMap<GraphWriter, Reference>();
const reference = (g: GraphWriter) => {
  let r = references.get(g);
  if (!r) references.set(g, (r = new Reference(g)));
  return r;
};

/** y = conv(x, W) + b, [N, M, Ho, Wo]. */
export function convForward(g: GraphWriter, c: ConvGeometry, x: string, weight: string, bias: string, output?: string): string {
  if (g.dtype === 'float32') return g.op('Conv', [x, weight, bias], convAttrs(c), output);
  const r = reference(g);
  const rows = g.op('Reshape', [x, g.int64s([-1, elements(c.input)])]);
  const y = g.op('Reshape', [g.op('MatMul', [rows, r.T(c, weight)]), g.int64s([-1, ...c.output])]);
  return g.op('Add', [y, g.op('Reshape', [bias, g.int64s([1, c.output[0]!, 1, 1])])], undefined, output);
}

/** dL/dx from dL/dy: the transposed convolution with the same weight. */
export function convInputGradient(g: GraphWriter, c: ConvGeometry, dy: string, weight: string): string {
  if (g.dtype === 'float32' && isPointwise(c)) {
    // A 1×1 convolution's transpose is a matrix product per pixel, much faster than ConvTranspose: dx[n] = Wᵀ·dy[n].
    const [C, H, W] = c.input as [number, number, number];
    const M = c.weight[0]!;
    const wt = g.op('Transpose', [g.op('Reshape', [weight, g.int64s([M, C])])], { perm: attr.ints([1, 0]) });
    const dyr = g.op('Reshape', [dy, g.int64s([0, M, H * W])]);
    return g.op('Reshape', [g.op('MatMul', [wt, dyr]), g.int64s([0, C, H, W])]);
  }
  if (g.dtype === 'float32') {
    // ConvTranspose's output size is ambiguous with strides > 1; output_padding picks the forward input's size.
    const [, H, W] = c.input as [number, number, number];
    const [, , kh, kw] = c.weight as [number, number, number, number];
    const [, Ho, Wo] = c.output as [number, number, number];
    const { strides: s, dilations: d, pads: p } = c.op;
    const outputPadding = [H - ((Ho - 1) * s[0] - p[0] - p[2] + d[0] * (kh - 1) + 1), W - ((Wo - 1) * s[1] - p[1] - p[3] + d[1] * (kw - 1) + 1)];
    return g.op('ConvTranspose', [dy, weight], { ...convAttrs(c), output_padding: attr.ints(outputPadding) });
  }
  const r = reference(g);
  const rows = g.op('Reshape', [dy, g.int64s([-1, elements(c.output)])]);
  const T = r.T(c, weight);
  return g.op('Reshape', [g.op('MatMul', [rows, g.op('Transpose', [T], { perm: attr.ints([1, 0]) })]), g.int64s([-1, ...c.input])]);
}

/** True for a 1×1, stride-1, unpadded, ungrouped convolution: a matrix product per pixel. */
function isPointwise(c: ConvGeometry): boolean {
  const { op } = c;
  return c.weight[2] === 1 && c.weight[3] === 1 && op.group === 1 && op.strides.every((s) => s === 1) && op.pads.every((p) => p === 0);
}

/** dL/dW from the forward input x and dL/dy, [M, C/group, kh, kw]. */
export function convWeightGradient(g: GraphWriter, c: ConvGeometry, x: string, dy: string): string {
  const [C, H, W] = c.input as [number, number, number];
  const [M, cig, kh, kw] = c.weight as [number, number, number, number];
  const [, Ho, Wo] = c.output as [number, number, number];
  if (g.dtype === 'float64') {
    // dW[k] = Σ_n Σ_{i,o} x[n,i]·dy[n,o]·S[k,i,o] = S · vec(xᵀ·dy)
    const xr = g.op('Reshape', [x, g.int64s([-1, C * H * W])]);
    const dyr = g.op('Reshape', [dy, g.int64s([-1, M * Ho * Wo])]);
    const outer = g.op('MatMul', [g.op('Transpose', [xr], { perm: attr.ints([1, 0]) }), dyr]);
    const column = g.op('Reshape', [outer, g.int64s([C * H * W * M * Ho * Wo, 1])]);
    return g.op('Reshape', [g.op('MatMul', [reference(g).S(c), column]), g.int64s(c.weight)]);
  }
  if (isPointwise(c)) {
    // dW[m, c] = Σ_{n,p} dy[n,m,p]·x[n,c,p]: batch and pixels side by side, then one product.
    const rows = (t: string, channels: number) =>
      g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [t, g.int64s([0, channels, Ho * Wo])])], { perm: attr.ints([1, 0, 2]) }), g.int64s([channels, -1])]);
    return g.op('Reshape', [g.op('Gemm', [rows(dy, M), rows(x, C)], { transB: attr.int(1) }), g.int64s(c.weight)]);
  }
  // The batch becomes the channels: x as [C/group, group·N, H, W], dy as a
  // weight [M, N, Ho, Wo]; a grouped convolution with the forward's dilation as
  // stride and its stride as dilation gives [C/group, M, kh', kw'], kh' ≥ kh.
  const group = c.op.group;
  const xg = g.op('Reshape', [x, g.int64s([0, group, cig, H, W])]);
  const xt = g.op('Reshape', [g.op('Transpose', [xg], { perm: attr.ints([2, 1, 0, 3, 4]) }), g.int64s([cig, -1, H, W])]);
  const dyt = g.op('Transpose', [dy], { perm: attr.ints([1, 0, 2, 3]) });
  const corr = g.op('Conv', [xt, dyt], {
    group: attr.int(group),
    strides: attr.ints(c.op.dilations),
    dilations: attr.ints(c.op.strides),
    pads: attr.ints(c.op.pads),
    kernel_shape: attr.ints([Ho, Wo]),
  });
  const sliced = g.op('Slice', [corr, g.int64s([0, 0]), g.int64s([kh, kw]), g.int64s([2, 3])]);
  return g.op('Transpose', [sliced], { perm: attr.ints([1, 0, 2, 3]) });
}
