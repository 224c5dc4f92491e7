// The floor of any job that runs a backbone over N images on this machine:
// onnxruntime alone on the model, with nothing else running (no decoding, no
// other stage), at the settings it is fastest with. bench/classic prints the
// ratio this floor allows against the classic job, beside the ratio tlpipe
// reaches.
//
//   node dist/bench/inference-alone.js MODEL.onnx [--images 64] [--reps 3] [--json]
//
// Input: random values of the model's input shape (batch axis free). Each
// setting (batch 1, 8, 16; spinning on and off; one intra-op thread per core)
// is timed on the same images after a warm-up run; the best median is printed.
import os from 'node:os';
import { createSession } from '../src/onnx/runtime.js';

const argv = process.argv.slice(2);
const model = argv.find((a) => !a.startsWith('--'));
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
if (!model) {
  console.error('usage: node dist/bench/inference-alone.js MODEL.onnx [--images 64] [--reps 3] [--json]');
  process.exit(64);
}
const images = option('--images', 64);
const reps = option('--reps', 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const { Tensor } = (await import('onnxruntime-node')).default;

interface Timing {
  batch: number;
  spinning: boolean;
  wallMsPerImage: number;
  cpuMsPerImage: number;
}

async function time(batch: number, spinning: boolean): Promise<Timing> {
  const session = await createSession(model!, { device: 'cpu', intraOpThreads: os.cpus().length, spinning, quiet: true }, 'the model');
  try {
    const input = session.inputNames[0]!;
    const meta = session.inputMetadata[0];
    // A free spatial axis is taken as 224, as the catalogue's backbones expect.
    const dims = meta?.isTensor ? meta.shape.slice(1).map((d) => (typeof d === 'number' && d > 0 ? d : 224)) : [3, 224, 224];
    const per = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(batch * per);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 2;
    const feed = { [input]: new Tensor('float32', data, [batch, ...dims]) };
    await session.run(feed);
    const runs = Math.max(1, Math.round(images / batch));
    const walls: number[] = [];
    const cpus: number[] = [];
    for (let r = 0; r < reps; r++) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (let i = 0; i < runs; i++) await session.run(feed);
      const used = process.cpuUsage(cpu);
      walls.push((performance.now() - started) / (runs * batch));
      cpus.push((used.user + used.system) / 1000 / (runs * batch));
    }
    return { batch, spinning, wallMsPerImage: median(walls), cpuMsPerImage: median(cpus) };
  } finally {
    await session.release();
  }
}

const timings: Timing[] = [];
for (const batch of [1, 8, 16]) for (const spinning of [true, false]) timings.push(await time(batch, spinning));
const best = timings.reduce((a, t) => (t.wallMsPerImage < a.wallMsPerImage ? t : a));
if (argv.includes('--json')) console.log(JSON.stringify({ model, images, reps, loadAverage: os.loadavg()[0], best, timings }));
else {
  for (const t of timings)
    console.log(`batch ${String(t.batch).padStart(2)}, spinning ${t.spinning ? 'on ' : 'off'}: ${t.wallMsPerImage.toFixed(1)} ms wall, ${t.cpuMsPerImage.toFixed(1)} ms CPU per image`);
  console.log(`fastest: batch ${best.batch}, spinning ${best.spinning ? 'on' : 'off'}, ${best.wallMsPerImage.toFixed(1)} ms per image (${os.cpus().length} intra-op threads; load average ${os.loadavg()[0]!.toFixed(1)})`);
}
