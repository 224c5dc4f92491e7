// Head-training speed of both engines.
//   node dist/bench/train.js            ms per 5 epochs over 25,000×1280 features, linear 2-class head, batch 64
//   node dist/bench/train.js crossover  ms per epoch for growing heads, to place the 'auto' crossover
// Prints medians of several runs. Features are synthetic (the speed does not depend on their values).
import { estimatedMsPerEpoch, macsPerSample } from '../src/train/engine-choice.js';
import type { HeadSpec } from '../src/train/head.js';
import { Prng } from '../src/train/prng.js';
import type { EngineChoice as EngineSetting } from '../src/train/spec.js';
import { train } from '../src/train/train.js';

function syntheticSet(rows: number, width: number, classes: number, seed: number) {
  const rng = new Prng(seed);
  const features = new Float32Array(rows * width);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const y = rng.below(classes);
    labels[i] = y;
    for (let k = 0; k < width; k++) features[i * width + k] = rng.uniform() + (k % classes === y ? 0.05 : 0);
  }
  return { features, labels };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeRun(
  engine: EngineSetting, head: HeadSpec, trainSet: ReturnType<typeof syntheticSet>,
  valSet: ReturnType<typeof syntheticSet> | undefined, width: number, classes: number, epochs: number,
): Promise<number> {
  const started = performance.now();
  await train({
    data: { train: trainSet, val: valSet, featureWidth: width, classes },
    head,
    spec: { engine, epochs, batchSize: 64, optimizer: 'adam', lr: 1e-3 },
  });
  return performance.now() - started;
}

async function mainBench(): Promise<void> {
  const width = 1280;
  const trainSet = syntheticSet(25000, width, 2, 1);
  const valSet = syntheticSet(5000, width, 2, 2);
  const runs = 5;
  console.log(`5 epochs, 25,000×${width} float32 features, linear 2-class head, Adam, batch 64; median of ${runs} runs (after one warm-up)`);
  for (const withVal of [false, true])
    for (const engine of ['typescript', 'onnx'] as const) {
      await timeRun(engine, { kind: 'linear' }, trainSet, withVal ? valSet : undefined, width, 2, 1);
      const times: number[] = [];
      for (let r = 0; r < runs; r++) times.push(await timeRun(engine, { kind: 'linear' }, trainSet, withVal ? valSet : undefined, width, 2, 5));
      console.log(
        `  ${engine.padEnd(10)} ${withVal ? '+ 5,000 validation vectors each epoch' : 'no validation split             '}  ${median(times).toFixed(0).padStart(5)} ms   (runs: ${times.map((t) => t.toFixed(0)).join(', ')})`,
      );
    }
}

async function crossover(): Promise<void> {
  const width = 1280;
  const rows = 5000;
  const heads: [string, HeadSpec, number][] = [
    ['linear, 2 classes', { kind: 'linear' }, 2],
    ['linear, 10 classes', { kind: 'linear' }, 10],
    ['linear, 40 classes', { kind: 'linear' }, 40],
    ['mlp [16], 2 classes', { kind: 'mlp', hidden: [16], dropout: 0 }, 2],
    ['mlp [64], 2 classes', { kind: 'mlp', hidden: [64], dropout: 0 }, 2],
    ['mlp [256], 2 classes', { kind: 'mlp', hidden: [256], dropout: 0 }, 2],
  ];
  console.log(`ms per epoch over ${rows}×${width} features, batch 64, Adam (median of 3; estimate from the 'auto' cost model in brackets)`);
  for (const [label, head, classes] of heads) {
    const set = syntheticSet(rows, width, classes, 3);
    const widths = [width, ...(head.kind === 'mlp' ? head.hidden : []), classes];
    const line: string[] = [];
    for (const engine of ['typescript', 'onnx'] as const) {
      await timeRun(engine, head, set, undefined, width, classes, 1);
      const times: number[] = [];
      for (let r = 0; r < 3; r++) times.push(await timeRun(engine, head, set, undefined, width, classes, 1));
      line.push(`${engine} ${median(times).toFixed(0).padStart(5)} [${estimatedMsPerEpoch(engine, widths, rows, 64).toFixed(0)}]`);
    }
    console.log(`  ${label.padEnd(22)} ${String(macsPerSample(widths)).padStart(8)} MAC/sample   ${line.join('   ')}`);
  }
}

await (process.argv[2] === 'crossover' ? crossover() : mainBench());
