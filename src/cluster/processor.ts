// The BullMQ processor of features chunk jobs, shared by `tlpipe worker` and
// the run's own share of the work. It never plans: it computes what the job
// names, puts the result in the remote under the job's id, and returns a
// summary. A result already in the remote is not computed again.
import { type Job, UnrecoverableError, WaitingError } from 'bullmq';
import { errorMessage } from '../runner/errors.js';
import { computeChunk, DataMismatch } from './compute-chunk.js';
import type { Exchange } from './exchange.js';
import type { SessionCache } from './sessions.js';
import { type FeatureJobData, verifyResult } from './feature-job.js';

export interface JobSummary {
  worker: string;
  images: number;
  failed: number;
  ms: number;
  /** True when the remote already held a valid result. */
  reused: boolean;
}

export interface ProcessorOptions {
  worker: string;
  exchange: Exchange;
  dataRoot: string;
  intraOpThreads?: number;
  loadConcurrency?: number;
  /** Sessions kept across this worker's jobs. */
  sessions?: SessionCache;
  /** The model file to compute with, checked before each job: a reason when this worker must not. */
  model(job: FeatureJobData): Promise<{ ok: true; path: string } | { ok: false; reason: string }>;
  /** True once this worker refused the queue: jobs fetched meanwhile go back. */
  refused?(): boolean;
  /** Aborted on shutdown: the job in hand goes back to the queue. */
  stopping: AbortSignal;
  onStart?(job: Job<FeatureJobData>): void;
  onProgress?(job: Job<FeatureJobData>, done: number, total: number): void;
  onEnd?(job: Job<FeatureJobData>, outcome: JobSummary | { error: string }): void;
  /** Called when this worker refuses a job (its model copy changed): it stops taking this queue. */
  onRefuse?(reason: string): void;
}

export function featureProcessor(options: ProcessorOptions) {
  return async (job: Job<FeatureJobData>, token?: string, cancelled?: AbortSignal): Promise<JobSummary> => {
    const started = Date.now();
    const id = job.id!;
    const handBack = async () => {
      await job.moveToWait(token);
      throw new WaitingError();
    };
    // Stopping, or this worker refused the queue a moment ago: the job goes back untouched.
    if (options.stopping.aborted || options.refused?.()) return handBack();
    options.onStart?.(job);
    try {
      const existing = await options.exchange.getResult(id);
      if (existing?.ok && verifyResult(existing.bytes, id, job.data).ok) {
        const summary = { worker: options.worker, images: job.data.images.length, failed: 0, ms: Date.now() - started, reused: true };
        options.onEnd?.(job, summary);
        return summary;
      }
      const model = await options.model(job.data);
      if (!model.ok) {
        options.onRefuse?.(model.reason);
        return await handBack();
      }
      const stop = AbortSignal.any([options.stopping, ...(cancelled ? [cancelled] : [])]);
      let bytes: Buffer;
      try {
        bytes = await computeChunk(id, job.data, {
          modelPath: model.path,
          dataRoot: options.dataRoot,
          worker: options.worker,
          intraOpThreads: options.intraOpThreads,
          loadConcurrency: options.loadConcurrency,
          sessions: options.sessions,
          signal: stop,
          onProgress: (done, total) => options.onProgress?.(job, done, total),
        });
      } catch (e) {
        // A session that saw an error or an abort is not reused.
        await options.sessions?.discard(model.path);
        if (stop.aborted) return await handBack();
        if (e instanceof DataMismatch) {
          // Its data is not the run's: this job fails (the run computes it) and the worker takes no more of this queue.
          options.onRefuse?.(`its data differs from the run's: ${e.message}`);
          throw new UnrecoverableError(`worker ${options.worker}: ${e.message}`);
        }
        throw e;
      }
      // A late or duplicate delivery (the lock expired, another worker finished first) leaves the stored result as it is.
      const stored = await options.exchange.getResult(id);
      if (!stored?.ok || !verifyResult(stored.bytes, id, job.data).ok) await options.exchange.putResult(id, bytes);
      const check = verifyResult(bytes, id, job.data);
      const failed = check.ok ? check.header.failed.length : 0;
      const summary = { worker: options.worker, images: job.data.images.length - failed, failed, ms: Date.now() - started, reused: false };
      options.onEnd?.(job, summary);
      return summary;
    } catch (e) {
      options.onEnd?.(job, { error: e instanceof WaitingError ? 'handed back to the queue' : errorMessage(e) });
      throw e;
    }
  };
}
