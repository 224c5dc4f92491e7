// `node dist/bench/features.js --tune`: varies one setting at a time around
// the defaults and reports the feature stage's rate for each, next to the
// bound measured in the same round. This is how the defaults in
// src/features/threads.ts and DEFAULT_BATCH_SIZE were chosen.
import { catsdogsFiles, warmPageCache, type DatasetRef } from './datasets.js';
import type { Measurement, MeasurementResult, Tuning } from './features-child.js';

interface TuneOptions {
  reps: number;
  sample: number;
  log: (line: string) => void;
  measure: (m: Measurement) => Promise<MeasurementResult>;
}

const CANDIDATES: Array<[string, Tuning]> = [
  ['batch 4', { batchSize: 4 }],
  ['batch 16', { batchSize: 16 }],
  ['batch 32', { batchSize: 32 }],
  ['intra-op 1', { intraOpThreads: 1 }],
  ['load concurrency 2', { loadConcurrency: 2 }],
  ['load concurrency 4', { loadConcurrency: 4 }],
  ['load concurrency 6', { loadConcurrency: 6 }],
  ['2 workers × 1 thread', { workers: 2, intraOpThreads: 1 }],
  ['spinning on', { spinning: true }],
  ['batches in flight 2', { batchesInFlight: 2 }],
  ['batches in flight 4', { batchesInFlight: 4 }],
  ['libvips threads 2', { libvipsThreads: 2 }],
  ['loader workers', { mainThreadLoader: false }],
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * Each candidate runs right after a run with the defaults, and counts as its
 * rate relative to that neighbour: a paired comparison, so slow drifts in
 * outside load (other users of the machine) cancel out.
 */
export async function tune({ reps, sample, log, measure }: TuneOptions): Promise<void> {
  const files = await catsdogsFiles();
  await warmPageCache(files);
  const dataset: DatasetRef = { name: 'catsdogs', count: Math.min(sample, files.length) };
  log(`\ntuning on the first ${dataset.count} catsdogs photos, ${reps} rounds; each setting vs. the defaults run just before it`);
  const relative = new Map<string, number[]>();
  const costs = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);
  for (let r = 1; r <= reps; r++) {
    const a = await measure({ mode: 'decode', dataset, tuning: {} });
    const b = await measure({ mode: 'infer', images: dataset.count, tuning: {} });
    const bound = 1 / (1 / a.imagesPerSecond + 1 / b.imagesPerSecond);
    add(costs, '(a)+(b) alone', a.cpuMsPerImage + b.cpuMsPerImage);
    log(
      `round ${r}: (a) ${a.imagesPerSecond.toFixed(1)}, (b) ${b.imagesPerSecond.toFixed(1)}, bound ${bound.toFixed(1)} images/s; ` +
        `CPU ms per image: decode ${a.cpuMsPerImage.toFixed(2)} + inference ${b.cpuMsPerImage.toFixed(2)}`,
    );
    // A different order each round, so a burst of outside load does not always hit the same setting.
    const order = CANDIDATES.map((_, i) => CANDIDATES[(i + r - 1) % CANDIDATES.length]!);
    for (const [name, tuning] of order) {
      const base = await measure({ mode: 'extract', dataset, tuning: {} });
      const c = await measure({ mode: 'extract', dataset, tuning });
      add(relative, name, c.imagesPerSecond / base.imagesPerSecond);
      add(relative, 'defaults', base.imagesPerSecond / bound);
      add(costs, name, c.cpuMsPerImage);
      add(costs, 'defaults', base.cpuMsPerImage);
      log(
        `  ${name.padEnd(22)} ${c.imagesPerSecond.toFixed(1).padStart(6)} vs defaults ${base.imagesPerSecond.toFixed(1).padStart(6)} images/s` +
          `  (${(c.imagesPerSecond / base.imagesPerSecond).toFixed(3)});  CPU ms/image ${c.cpuMsPerImage.toFixed(2)} vs ${base.cpuMsPerImage.toFixed(2)}`,
      );
    }
  }
  log(`\nmedians: defaults reach ${median(relative.get('defaults')!).toFixed(3)} of the bound, ` +
    `at ${median(costs.get('defaults')!).toFixed(2)} CPU ms per image (decode + inference alone: ${median(costs.get('(a)+(b) alone')!).toFixed(2)})`);
  log('  setting                rate vs defaults   CPU ms/image');
  for (const [name] of CANDIDATES) {
    log(`  ${name.padEnd(22)} ${median(relative.get(name)!).toFixed(3).padStart(9)}          ${median(costs.get(name)!).toFixed(2)}`);
  }
}
