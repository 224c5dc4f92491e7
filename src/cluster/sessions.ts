// Inference sessions a queue worker keeps across jobs: starting one (loading
// the model into onnxruntime) costs more than a small chunk's inference, so
// each model's session is started once and reused for every job that names it.
import os from 'node:os';
import { InferencePool } from '../features/inference-pool.js';
import { DECODE_CPU_MS_PER_IMAGE, planThreads } from '../features/threads.js';

export class SessionCache {
  readonly #pools = new Map<string, InferencePool>();

  get(modelPath: string, device: 'cpu' | 'cuda', intraOpThreads?: number): InferencePool {
    const key = `${modelPath}\n${device}\n${intraOpThreads ?? ''}`;
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new InferencePool({
        model: modelPath,
        modelLabel: `"${modelPath}"`,
        settings: { device, intraOpThreads: intraOpThreads ?? planThreads().intraOpThreads, spinning: false },
        workers: 1,
        // Spinning chosen from the model's measured cost, as the features stage chooses it (threads.ts):
        // a worker decodes its chunks' images beside inference just the same.
        ...(device === 'cpu' ? { chooseSpinning: { decodeCpuMsPerImage: DECODE_CPU_MS_PER_IMAGE, loadAverage: os.loadavg()[0] ?? 0 } } : {}),
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Drops a session after a failure, so that the next job starts a fresh one. */
  async discard(modelPath: string): Promise<void> {
    for (const [key, pool] of this.#pools) {
      if (!key.startsWith(`${modelPath}\n`)) continue;
      this.#pools.delete(key);
      await pool.close().catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }
}
