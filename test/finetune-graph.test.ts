// The fine-tuning graph's hand-written back-propagation: every operator of the
// unfrozen top, and whole MobileNetV2 and ResNet blocks, against central
// finite differences of the float64 build's own loss; then the float32 build
// (onnxruntime's Conv, ConvTranspose, ... as the CPU and CUDA providers run
// them) against the float64 build.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildFinetuneEvalGraph, buildFinetuneTrainGraph, finetuneParams, ftIo, scalarInputs, stateNames, type FinetuneShape } from '../src/finetune/graph.js';
import type { ConvOp, TopOp } from '../src/finetune/top.js';
import { elements, topShapes } from '../src/finetune/top.js';
import { Prng } from '../src/train/prng.js';

type Dtype = 'float32' | 'float64';

/** A small top built op by op, with parameter dims; values are drawn per test. */
class TopSketch {
  readonly ops: TopOp[] = [];
  readonly params: { name: string; dims: number[] }[] = [];
  private n = 0;
  constructor(readonly input: string, readonly inputShape: number[]) {}
  conv(input: string, out: number, inPerGroup: number, k: number, o: Partial<Pick<ConvOp, 'strides' | 'pads' | 'group' | 'dilations'>> = {}): string {
    const id = this.n++;
    const op: ConvOp = {
      op: 'conv', input, output: `t${id}`, weight: `conv${id}.weight`, bias: `conv${id}.bias`,
      group: o.group ?? 1, strides: o.strides ?? [1, 1], pads: o.pads ?? [0, 0, 0, 0], dilations: o.dilations ?? [1, 1],
    };
    this.ops.push(op);
    this.params.push({ name: op.weight, dims: [out, inPerGroup, k, k] }, { name: op.bias, dims: [out] });
    return op.output;
  }
  clip(input: string, min: number, max: number): string {
    const output = `t${this.n++}`;
    this.ops.push({ op: 'clip', input, output, min, max });
    return output;
  }
  add(a: string, b: string): string {
    const output = `t${this.n++}`;
    this.ops.push({ op: 'add', inputs: [a, b], output });
    return output;
  }
  gap(input: string): string {
    const output = `t${this.n++}`;
    this.ops.push({ op: 'gap', input, output });
    return output;
  }
  flatten(input: string): string {
    const output = `t${this.n++}`;
    this.ops.push({ op: 'flatten', input, output });
    return output;
  }
  net(output: string): FinetuneShape['top'] {
    return { input: this.input, inputShape: this.inputShape, output, ops: this.ops, params: this.params };
  }
}

interface Problem {
  shape: FinetuneShape;
  batch: number;
  activations: Float64Array;
  labels: BigInt64Array;
  classWeights: Float64Array;
  values: Map<string, Float64Array>;
}

function problem(top: FinetuneShape['top'], hidden: number[], classes: number, seed: number, dtype: Dtype, scale = 1): Problem {
  const rng = new Prng(seed);
  const featureShape = topShapes({ ...top, params: top.params.map((p) => ({ ...p, data: new Float32Array(0) })) }).get(top.output)!;
  const headWidths = [featureShape[0]!, ...hidden, classes];
  const shape: FinetuneShape = { top, headWidths, dtype };
  const batch = 4;
  const activations = Float64Array.from({ length: batch * elements(top.inputShape) }, () => (rng.uniform() * 2 - 1) * scale);
  const labels = BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % classes));
  const classWeights = Float64Array.from({ length: classes }, (_, c) => 0.5 + c * 0.75);
  const values = new Map<string, Float64Array>();
  for (const p of finetuneParams(shape)) {
    const fanIn = p.dims.length > 1 ? elements(p.dims.slice(1)) : 4;
    values.set(p.name, Float64Array.from({ length: elements(p.dims) }, () => (rng.uniform() - 0.5) * (2 / Math.sqrt(fanIn))));
  }
  return { shape, batch, activations, labels, classWeights, values };
}

async function session(p: Problem, dtype: Dtype): Promise<ort.InferenceSession> {
  const graph = buildFinetuneTrainGraph({ ...p.shape, dtype, optimizer: { betas: [0.9, 0.999], eps: 1e-8 }, exposeGradients: true });
  return ort.InferenceSession.create(graph.model);
}

function feeds(p: Problem, dtype: Dtype): Record<string, ort.Tensor> {
  const arr = (x: Float64Array) => (dtype === 'float64' ? x : Float32Array.from(x));
  const scalar = (v: number) => new ort.Tensor(dtype, dtype === 'float64' ? Float64Array.of(v) : Float32Array.of(v), []);
  const f: Record<string, ort.Tensor> = {
    [ftIo.activations]: new ort.Tensor(dtype, arr(p.activations), [p.batch, elements(p.shape.top.inputShape)]),
    [ftIo.labels]: new ort.Tensor('int64', p.labels, [p.batch]),
    [ftIo.classWeights]: new ort.Tensor(dtype, arr(p.classWeights), [p.classWeights.length]),
  };
  for (const s of scalarInputs()) f[s] = scalar(s.startsWith('decay') || s === ftIo.bias2Sqrt ? 1 : 0);
  for (const spec of finetuneParams(p.shape)) {
    f[spec.name] = new ort.Tensor(dtype, arr(p.values.get(spec.name)!), spec.dims);
    for (const s of stateNames(spec.name)) f[s] = new ort.Tensor(dtype, arr(new Float64Array(elements(spec.dims))), spec.dims);
  }
  return f;
}

/** Central differences of the float64 loss for every parameter element, against the graph's gradients. */
async function gradientCheck(p: Problem): Promise<number> {
  const s = await session(p, 'float64');
  const run = () => s.run(feeds(p, 'float64'));
  const analytic = await run();
  const h = 1e-5;
  let checked = 0;
  for (const spec of finetuneParams(p.shape)) {
    const param = p.values.get(spec.name)!;
    const grad = analytic[ftIo.grad(spec.name)]!.data as Float64Array;
    for (let j = 0; j < param.length; j++) {
      const saved = param[j]!;
      param[j] = saved + h;
      const up = Number((await run())[ftIo.loss]!.data[0]);
      param[j] = saved - h;
      const down = Number((await run())[ftIo.loss]!.data[0]);
      param[j] = saved;
      const numeric = (up - down) / (2 * h);
      const error = Math.abs(numeric - grad[j]!) / Math.max(1e-3, Math.abs(numeric), Math.abs(grad[j]!));
      assert.ok(error < 1e-6, `${spec.name}[${j}]: graph ${grad[j]} vs finite difference ${numeric} (relative error ${error.toExponential(2)})`);
      checked++;
    }
  }
  await s.release();
  return checked;
}

/** The float32 build (native operators) against the float64 reference build: loss and every gradient. */
async function nativeAgrees(p: Problem): Promise<void> {
  const [s64, s32] = [await session(p, 'float64'), await session(p, 'float32')];
  const [r64, r32] = [await s64.run(feeds(p, 'float64')), await s32.run(feeds(p, 'float32'))];
  const loss64 = Number(r64[ftIo.loss]!.data[0]);
  assert.ok(Math.abs(Number(r32[ftIo.loss]!.data[0]) - loss64) < 1e-5 * Math.max(1, loss64));
  for (const spec of finetuneParams(p.shape)) {
    const a = r64[ftIo.grad(spec.name)]!.data as Float64Array;
    const b = r32[ftIo.grad(spec.name)]!.data as Float32Array;
    const norm = Math.sqrt(a.reduce((t, x) => t + x * x, 0)) || 1;
    for (let j = 0; j < a.length; j++) {
      assert.ok(Math.abs(a[j]! - b[j]!) < 1e-5 * norm + 1e-7, `${spec.name}[${j}]: float32 ${b[j]} vs float64 ${a[j]}`);
    }
  }
  await s64.release();
  await s32.release();
}

interface Case {
  name: string;
  build: () => { top: FinetuneShape['top']; hidden?: number[]; classes?: number };
}

const cases: Case[] = [
  { name: 'conv 3×3, pad 1', build: () => { const t = new TopSketch('x', [3, 5, 5]); return { top: t.net(t.gap(t.conv('x', 4, 3, 3, { pads: [1, 1, 1, 1] }))) }; } },
  { name: 'conv 3×3, stride 2, odd size (output_padding)', build: () => { const t = new TopSketch('x', [2, 6, 5]); return { top: t.net(t.gap(t.conv('x', 3, 2, 3, { strides: [2, 2], pads: [1, 1, 1, 1] }))) }; } },
  { name: 'conv 2×2, stride 2, asymmetric pads, flattened', build: () => { const t = new TopSketch('x', [2, 5, 5]); return { top: t.net(t.flatten(t.conv('x', 2, 2, 2, { strides: [2, 2], pads: [0, 1, 1, 0] }))) }; } },
  { name: 'depthwise conv 3×3, stride 2', build: () => { const t = new TopSketch('x', [4, 5, 5]); return { top: t.net(t.gap(t.conv('x', 4, 1, 3, { group: 4, strides: [2, 2], pads: [1, 1, 1, 1] }))) }; } },
  { name: 'grouped conv (group 2, dilation 2)', build: () => { const t = new TopSketch('x', [4, 6, 6]); return { top: t.net(t.gap(t.conv('x', 6, 2, 3, { group: 2, dilations: [2, 2], pads: [1, 1, 1, 1] }))) }; } },
  { name: 'pointwise conv', build: () => { const t = new TopSketch('x', [5, 3, 3]); return { top: t.net(t.gap(t.conv('x', 6, 5, 1))) }; } },
  { name: 'ReLU after conv', build: () => { const t = new TopSketch('x', [3, 4, 4]); return { top: t.net(t.gap(t.clip(t.conv('x', 4, 3, 1), 0, Infinity))) }; } },
  { name: 'ReLU6 (Clip 0..6) after conv', build: () => { const t = new TopSketch('x', [3, 4, 4]); return { top: t.net(t.gap(t.clip(t.conv('x', 4, 3, 3, { pads: [1, 1, 1, 1] }), 0, 0.3))) }; } },
  { name: 'Add of two branches', build: () => { const t = new TopSketch('x', [3, 4, 4]); const a = t.conv('x', 3, 3, 1); return { top: t.net(t.gap(t.add(a, t.conv(a, 3, 3, 3, { pads: [1, 1, 1, 1] })))) }; } },
  { name: 'flatten into a two-layer head', build: () => { const t = new TopSketch('x', [2, 3, 3]); return { top: t.net(t.flatten(t.conv('x', 2, 2, 3, { pads: [1, 1, 1, 1] }))), hidden: [5] }; } },
];

/** MobileNetV2's last blocks: inverted residual (expand, depthwise, project, add), then the 1×1 conv to the features. */
function mobilenetBlocks(): { top: FinetuneShape['top']; hidden?: number[]; classes?: number } {
  const t = new TopSketch('x', [3, 4, 4]);
  const relu6 = (x: string) => t.clip(x, 0, 6);
  const e = relu6(t.conv('x', 6, 3, 1));
  const d = relu6(t.conv(e, 6, 1, 3, { group: 6, pads: [1, 1, 1, 1] }));
  const block = t.add('x', t.conv(d, 3, 6, 1));
  // A non-residual block with stride 2, then the last 1×1 conv and pooling.
  const e2 = relu6(t.conv(block, 6, 3, 1));
  const d2 = relu6(t.conv(e2, 6, 1, 3, { group: 6, strides: [2, 2], pads: [1, 1, 1, 1] }));
  const p2 = t.conv(d2, 4, 6, 1);
  return { top: t.net(t.gap(relu6(t.conv(p2, 5, 4, 1)))), classes: 3 };
}

/** ResNet's basic block with a strided downsample branch, then an identity block. */
function resnetBlocks(): { top: FinetuneShape['top']; hidden?: number[]; classes?: number } {
  const t = new TopSketch('x', [3, 6, 6]);
  const relu = (x: string) => t.clip(x, 0, Infinity);
  const a = relu(t.conv('x', 4, 3, 3, { strides: [2, 2], pads: [1, 1, 1, 1] }));
  const b = t.conv(a, 4, 4, 3, { pads: [1, 1, 1, 1] });
  const down = t.conv('x', 4, 3, 1, { strides: [2, 2] });
  const out1 = relu(t.add(b, down));
  const c = relu(t.conv(out1, 4, 4, 3, { pads: [1, 1, 1, 1] }));
  const out2 = relu(t.add(t.conv(c, 4, 4, 3, { pads: [1, 1, 1, 1] }), out1));
  return { top: t.net(t.gap(out2)), classes: 2 };
}

for (const [i, c] of cases.entries()) {
  test(`finite differences: ${c.name}`, async () => {
    const { top, hidden = [], classes = 3 } = c.build();
    const checked = await gradientCheck(problem(top, hidden, classes, 100 + i, 'float64'));
    assert.ok(checked > 10);
  });
}

test('finite differences: whole MobileNetV2 blocks (inverted residual, stride-2 block, last conv)', async () => {
  const { top, classes } = mobilenetBlocks();
  // Activations of a few units keep Clip's kinks away from the ±h of the differences.
  assert.ok((await gradientCheck(problem(top, [], classes!, 7, 'float64', 2))) > 200);
});

test('finite differences: whole ResNet basic blocks (downsample branch, identity block)', async () => {
  const { top, classes } = resnetBlocks();
  assert.ok((await gradientCheck(problem(top, [], classes!, 8, 'float64', 2))) > 400);
});

test('float32 build (Conv, ConvTranspose, swapped-axes Conv) matches the float64 reference on every case', async () => {
  for (const [i, c] of [...cases, { name: 'mobilenet', build: mobilenetBlocks }, { name: 'resnet', build: resnetBlocks }].entries()) {
    const { top, hidden = [], classes = 3 } = c.build();
    await nativeAgrees(problem(top, hidden, classes, 200 + i, 'float64'));
  }
});

test('the evaluation graph gives the training graph\'s loss, and an AdamW step lowers it', async () => {
  const { top, classes } = mobilenetBlocks();
  const p = problem(top, [], classes!, 9, 'float32');
  const evalGraph = buildFinetuneEvalGraph({ ...p.shape, dtype: 'float32', withLabels: true });
  const evalSession = await ort.InferenceSession.create(evalGraph.model);
  const trainSession = await session(p, 'float32');
  const f = feeds(p, 'float32');
  const lossOf = async (fs: Record<string, ort.Tensor>) => {
    const out = await evalSession.run(fs);
    return Number(out[ftIo.lossSum]!.data[0]) / Number(out[ftIo.weightSum]!.data[0]);
  };
  const before = await lossOf(f);
  f[ftIo.stepSize('blocks')] = new ort.Tensor('float32', Float32Array.of(1e-3 / 0.1), []);
  f[ftIo.stepSize('head')] = new ort.Tensor('float32', Float32Array.of(1e-2 / 0.1), []);
  f[ftIo.bias2Sqrt] = new ort.Tensor('float32', Float32Array.of(Math.sqrt(1 - 0.999)), []);
  const step = await trainSession.run(f);
  assert.ok(Math.abs(Number(step[ftIo.loss]!.data[0]) - before) < 1e-5);
  const next = { ...f };
  for (const spec of finetuneParams(p.shape)) next[spec.name] = step[ftIo.next(spec.name)] as ort.Tensor;
  assert.ok((await lossOf(next)) < before, 'one step lowers the batch loss');
});

