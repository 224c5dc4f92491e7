// Head-training speed of both engines.
//   node dist/bench/train.js            ms per 5 epochs over 25,000×1280 features, linear 2-class head, batch 64
//   node dist/bench/train.js crossover  ms per epoch for growing heads, to place the 'auto' crossover
// Prints medians of several runs. Features are synthetic (the speed does not depend on their values).
import os from 'node:os';
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

interface Timing {
  wallMs: number;
  /** CPU time of this process (all threads): less sensitive than wall time to other load on the machine. */
  cpuMs: number;
}

async function timeRun(
  engine: EngineSetting, head: HeadSpec, trainSet: ReturnType<typeof syntheticSet>,
  valSet: ReturnType<typeof syntheticSet> | undefined, width: number, classes: number, epochs: number,
): Promise<Timing> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  await train({
    data: { train: trainSet, val: valSet, featureWidth: width, classes },
    head,
    spec: { engine, epochs, batchSize: 64, optimizer: 'adam', lr: 1e-3 },
  });
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - started, cpuMs: (used.user + used.system) / 1000 };
}

const summary = (times: Timing[]) =>
  `${median(times.map((t) => t.wallMs)).toFixed(0).padStart(5)} ms wall, ${median(times.map((t) => t.cpuMs)).toFixed(0).padStart(5)} ms CPU`;

async function mainBench(): Promise<void> {
  const width = 1280;
  const trainSet = syntheticSet(25000, width, 2, 1);
  const valSet = syntheticSet(5000, width, 2, 2);
  const runs = 5;
  console.log(`5 epochs, 25,000×${width} float32 features, linear 2-class head, Adam, batch 64; median of ${runs} runs (after one warm-up); load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`);
  for (const withVal of [false, true])
    for (const engine of ['typescript', 'onnx'] as const) {
      await timeRun(engine, { kind: 'linear' }, trainSet, withVal ? valSet : undefined, width, 2, 1);
      const times: Timing[] = [];
      for (let r = 0; r < runs; r++) times.push(await timeRun(engine, { kind: 'linear' }, trainSet, withVal ? valSet : undefined, width, 2, 5));
      console.log(
        `  ${engine.padEnd(10)} ${withVal ? '+ 5,000 validation vectors' : 'no validation split       '}  ${summary(times)}   (wall: ${times.map((t) => t.wallMs.toFixed(0)).join(', ')})`,
      );
    }
}

async function crossover(): Promise<void> {
  const rows = 5000;
  const cases: [string, number, HeadSpec, number][] = [
    ['linear 64→2', 64, { kind: 'linear' }, 2],
    ['linear 256→2', 256, { kind: 'linear' }, 2],
    ['linear 512→2', 512, { kind: 'linear' }, 2],
    ['linear 1280→2', 1280, { kind: 'linear' }, 2],
    ['linear 128→10', 128, { kind: 'linear' }, 10],
    ['linear 512→10', 512, { kind: 'linear' }, 10],
    ['linear 1280→10', 1280, { kind: 'linear' }, 10],
    ['mlp 128→16→2', 128, { kind: 'mlp', hidden: [16], dropout: 0 }, 2],
    ['mlp 1280→64→2', 1280, { kind: 'mlp', hidden: [64], dropout: 0 }, 2],
    ['mlp 1280→256→2', 1280, { kind: 'mlp', hidden: [256], dropout: 0 }, 2],
  ];
  console.log(`µs per training sample and epoch (over ${rows} vectors, batch 64, Adam; setup excluded; median of 3 after a warm-up; cost-model estimate in brackets); load average ${os.loadavg()[0]!.toFixed(1)}`);
  for (const [label, width, head, classes] of cases) {
    const set = syntheticSet(rows, width, classes, 3);
    const widths = [width, ...(head.kind === 'mlp' ? head.hidden : []), classes];
    const line: string[] = [];
    for (const engine of ['typescript', 'onnx'] as const) {
      await timeRun(engine, head, set, undefined, width, classes, 1);
      // (3 epochs − 1 epoch) / 2: the cost of an epoch without session creation and other setup.
      const perEpoch: Timing[] = [];
      for (let r = 0; r < 3; r++) {
        const one = await timeRun(engine, head, set, undefined, width, classes, 1);
        const three = await timeRun(engine, head, set, undefined, width, classes, 3);
        perEpoch.push({ wallMs: (three.wallMs - one.wallMs) / 2, cpuMs: (three.cpuMs - one.cpuMs) / 2 });
      }
      const perSample = (ms: number) => ((ms * 1000) / rows).toFixed(2).padStart(6);
      line.push(
        `${engine} ${perSample(median(perEpoch.map((t) => t.wallMs)))} wall ${perSample(median(perEpoch.map((t) => t.cpuMs)))} CPU [${perSample(estimatedMsPerEpoch(engine, widths, rows, 64))}]`,
      );
    }
    console.log(`  ${label.padEnd(16)} ${String(macsPerSample(widths)).padStart(8)} MAC/sample   ${line.join('   ')}`);
  }
}

await (process.argv[2] === 'crossover' ? crossover() : mainBench());
