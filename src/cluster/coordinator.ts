// The run's side of a distributed features stage. It cuts the images still
// missing into chunk jobs with ids derived from their content, adds them to
// BullMQ, works on them itself, and accepts a chunk only from the remote and
// only once it verifies (format, checksum, width, exactly the job's keys).
// The remote is the truth: a job Redis forgot (a restart without
// persistence) is added again when its result is not there, and a result
// that is there is taken whoever computed it. Workers execute; only the run plans.
import { Queue, Worker } from 'bullmq';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { TransformSpec } from '../images/transform-spec.js';
import { RemoteError } from '../remote/backend.js';
import { errorMessage, Interrupted } from '../runner/errors.js';
import { hashFile } from '../runner/store.js';
import { computeChunk } from './compute-chunk.js';
import { connect, displayUrl, keys, lockDurationMs, parseQueueUrl, PREFIX, QueueUnavailable, queueName, queueTimeoutMs, reconnectDelay, STATE_CHECK_MS, DISCOVERY_GRACE_MS, workersServing } from './connection.js';
import type { Exchange } from './exchange.js';
import { FEATURE_JOB_FORMAT, type FeatureJobData, featureJobId, type JobImage, type Requirements, requirementsId, type ResultHeader, verifyResult } from './feature-job.js';
import { featureProcessor, type JobSummary } from './processor.js';
import { runtimeVersions } from './runtime.js';
import { SessionCache } from './sessions.js';

/** One view to compute, with the run's absolute path of its image. */
export interface ViewToCompute {
  key: string;
  hash: string;
  file: string;
  copy: number;
}

export interface FeatureRequest {
  modelPath: string;
  spec: TransformSpec;
  augmentSeed: number;
  batchSize?: number;
  chunkSize: number;
  featureWidth: number;
  device: 'cpu' | 'cuda';
  intraOpThreads?: number;
  loadConcurrency?: number;
  projectDir: string;
  /**
   * Every view of the stage, in order, each key once: chunks are cut over all
   * of them so that their ids stay the same from run to run, whatever this
   * machine already holds.
   */
  views: ViewToCompute[];
  /** Whether this run already holds a key's vector. */
  known(key: string): boolean;
  /** Takes one verified chunk: its vectors, and the images that could not be decoded. */
  accept(rows: Map<string, Float32Array>, failed: ResultHeader['failed']): Promise<void>;
  log(message: string): void;
  warn(message: string): void;
  progress(done: number, total: number): void;
  signal: AbortSignal;
}

/** What the runner hands a step that may spread its work (StepContext.cluster). */
export interface Cluster {
  /** Whether a features computation of this many views is worth spreading. */
  worthSpreading(views: number, chunkSize: number): boolean;
  computeFeatures(request: FeatureRequest): Promise<FeatureSpreadReport>;
  /** Releases the remote's connections once the run is over. */
  close(): void;
}

export interface FeatureSpreadReport {
  chunks: number;
  /** Chunks the remote already held when the stage started. */
  fromRemote: number;
  /** Chunks this process computed (its queue share and any fallback). */
  computedHere: number;
  /** Chunks computed by other processes while the stage ran. */
  computedElsewhere: number;
}

export interface ClusterOptions {
  queueUrl: string;
  exchange: Exchange;
  /** Jobs the run works on at once itself (0: it only coordinates). */
  localConcurrency: number;
}

const POLL_MS = 200;

/** The folder jobs name images relative to: the project when every image is inside it, else their common folder. */
export function dataRootOf(files: string[], projectDir: string): string {
  const inside = (f: string) => !path.relative(projectDir, f).startsWith('..') && !path.isAbsolute(path.relative(projectDir, f));
  if (files.every(inside)) return projectDir;
  let root = path.dirname(files[0]!);
  for (const f of files) while (!f.startsWith(root + path.sep) && root !== path.dirname(root)) root = path.dirname(root);
  return root;
}

export class QueueCluster implements Cluster {
  constructor(private readonly options: ClusterOptions) {}

  get queueUrl(): string {
    return this.options.queueUrl;
  }

  get localConcurrency(): number {
    return this.options.localConcurrency;
  }

  close(): void {
    this.options.exchange.close();
  }

  worthSpreading(views: number, chunkSize: number): boolean {
    return views > 2 * chunkSize;
  }

  async computeFeatures(req: FeatureRequest): Promise<FeatureSpreadReport> {
    const url = displayUrl(this.options.queueUrl);
    const exchange = this.options.exchange;
    let lastError = '';
    const redis: Redis = connect(this.options.queueUrl, (e) => (lastError = errorMessage(e)));
    const closers: (() => Promise<unknown>)[] = [async () => redis.disconnect()];
    const stopping = new AbortController();
    const onAbort = () => stopping.abort();
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.waitForRedis(redis, url, () => lastError, req);
      const { size } = await stat(req.modelPath);
      const requirements: Requirements = {
        format: FEATURE_JOB_FORMAT,
        model: { sha256: await hashFile(req.modelPath), size },
        runtime: runtimeVersions(req.device),
        ...(exchange.signed ? { signedResults: true as const } : {}),
      };
      const reqId = requirementsId(requirements);
      const dataRoot = dataRootOf(req.views.map((v) => v.file), req.projectDir);
      const jobs = new Map<string, { data: FeatureJobData; views: ViewToCompute[]; missing: number }>();
      for (let i = 0; i < req.views.length; i += req.chunkSize) {
        const views = req.views.slice(i, i + req.chunkSize);
        const images: JobImage[] = views.map((v) => ({ key: v.key, hash: v.hash, copy: v.copy, path: path.relative(dataRoot, v.file).split(path.sep).join('/') }));
        const data: FeatureJobData = {
          format: FEATURE_JOB_FORMAT,
          requirements,
          spec: req.spec,
          augmentSeed: req.augmentSeed,
          ...(req.batchSize ? { batchSize: req.batchSize } : {}),
          featureWidth: req.featureWidth,
          dataRoot,
          images,
        };
        const missing = views.filter((v) => !req.known(v.key)).length;
        if (missing) jobs.set(featureJobId(data), { data, views, missing });
      }
      const report: FeatureSpreadReport = { chunks: jobs.size, fromRemote: 0, computedHere: 0, computedElsewhere: 0 };
      const pending = new Set(jobs.keys());
      const total = [...jobs.values()].reduce((n, j) => n + j.missing, 0);
      let done = 0;
      const computedHere = new Set<string>();
      /** Jobs whose stored result was refused: they are computed here rather than re-added forever. */
      const rejected = new Set<string>();
      const refuse = (id: string, problem: string) => {
        if (rejected.has(id)) return false;
        rejected.add(id);
        req.warn(`the remote's result of job ${id.slice(0, 15)}… is not usable (${problem}); it is computed again`);
        return false;
      };
      const acceptBytes = async (id: string, bytes: Buffer, when: 'start' | 'later'): Promise<boolean> => {
        const job = jobs.get(id)!;
        const checked = verifyResult(bytes, id, job.data);
        if (!checked.ok) return refuse(id, checked.problem);
        await req.accept(checked.rows, checked.header.failed);
        pending.delete(id);
        done += job.missing;
        req.progress(done, total);
        if (when === 'start') report.fromRemote++;
        else if (computedHere.has(id)) report.computedHere++;
        else report.computedElsewhere++;
        return true;
      };
      const take = async (id: string, when: 'start' | 'later'): Promise<boolean> => {
        const stored = await exchange.getResult(id);
        if (!stored) return false;
        if (!stored.ok) return refuse(id, stored.problem);
        return acceptBytes(id, stored.bytes, when);
      };
      const workerName = `${os.hostname()}-${process.pid}-run`;
      const sessions = new SessionCache();
      closers.push(() => sessions.closeAll());
      /** Computes a job in this process and takes its result directly; the remote gets a copy when it can. */
      const computeHere = async (id: string, share: boolean) => {
        const { data } = jobs.get(id)!;
        const bytes = await computeChunk(id, data, { modelPath: req.modelPath, dataRoot: data.dataRoot, worker: workerName, intraOpThreads: req.intraOpThreads, loadConcurrency: req.loadConcurrency, sessions, signal: req.signal });
        computedHere.add(id);
        if (!(await acceptBytes(id, bytes, 'later'))) throw new Error(`this run's own result of job ${id.slice(0, 15)}… does not verify`);
        if (share) await exchange.putResult(id, bytes);
      };
      const localWorkers: Worker[] = [];
      const spread = async () => {
        await exchange.offerModel(requirements.model, req.modelPath);
        // One listing of the remote, not one request per job: what is there is fetched and checked.
        const there = await exchange.resultIds();
        for (const id of jobs.keys()) if (there.has(id)) await take(id, 'start');
        if (!pending.size) return;
        await redis.hset(keys.requirements, reqId, JSON.stringify(requirements));
        const connection = { ...parseQueueUrl(this.options.queueUrl), maxRetriesPerRequest: null, retryStrategy: reconnectDelay };
        const queue = new Queue<FeatureJobData, JobSummary>(queueName(reqId), { connection, prefix: PREFIX });
        queue.on('error', (e) => (lastError = errorMessage(e)));
        closers.push(() => queue.close());
        const add = (ids: string[]) =>
          queue.addBulk(
            ids.map((id) => ({
              name: 'features',
              data: jobs.get(id)!.data,
              opts: {
                jobId: id,
                attempts: 3,
                backoff: { type: 'exponential', delay: 1000 },
                // Kept a while so that a second run adding the same id finds it done instead of redoing it.
                removeOnComplete: { age: 3600 },
                removeOnFail: { age: 3600 },
              },
            })),
          );
        await add([...pending]);
        const addedAt = Date.now();
        req.log(
          `queue ${url}: ${pending.size} chunk jobs of ${req.chunkSize} images on queue ${reqId}` +
            `${report.fromRemote ? ` (${report.fromRemote} chunks were already in the remote)` : ''}; images are named relative to ${dataRoot} (workers: --data-root)`,
        );

        const refusals = new Set<string>();
        const reportRefusals = async () => {
          for (const [worker, reason] of Object.entries(await redis.hgetall(keys.refusals(reqId)))) {
            if (refusals.has(worker)) continue;
            refusals.add(worker);
            req.warn(`worker ${worker} refused this stage's jobs: ${reason}`);
          }
        };
        let localStarted = false;
        const startLocal = (concurrency: number) => {
          localStarted = true;
          const local = new Worker<FeatureJobData, JobSummary>(
            queueName(reqId),
            featureProcessor({
              worker: workerName,
              exchange,
              dataRoot,
              intraOpThreads: req.intraOpThreads,
              loadConcurrency: req.loadConcurrency,
              sessions,
              stopping: stopping.signal,
              model: async () => ({ ok: true, path: req.modelPath }),
              onEnd: (job, outcome) => {
                if (!('error' in outcome) && !outcome.reused) computedHere.add(job.id!);
              },
            }),
            { connection, prefix: PREFIX, concurrency, lockDuration: lockDurationMs(), stalledInterval: lockDurationMs(), maxStalledCount: 10 },
          );
          local.on('error', (e) => (lastError = errorMessage(e)));
          localWorkers.push(local);
          closers.unshift(() => local.close());
        };
        if (this.options.localConcurrency > 0) startLocal(this.options.localConcurrency);
        /** Live workers (by their leases) that take this queue's jobs. */
        const serving = () => workersServing(redis, reqId);

        let lastStateCheck = 0;
        let lastListing = Date.now();
        let downSince: number | undefined;
        while (pending.size) {
          if (req.signal.aborted) throw new Interrupted();
          await new Promise((r) => setTimeout(r, POLL_MS));
          // Redis says which jobs completed (a result is put before its job completes); a listing
          // of the remote every few seconds finds the rest (Redis restarted, another run's work).
          const ready = new Set<string>();
          if (redis.status === 'ready') for (const id of await queue.getRanges(['completed'], 0, -1).catch(() => [] as string[])) ready.add(id);
          if (Date.now() - lastListing >= STATE_CHECK_MS) {
            lastListing = Date.now();
            for (const id of await exchange.resultIds()) ready.add(id);
          }
          for (const id of [...pending]) if (ready.has(id) && !rejected.has(id)) await take(id, 'later');
          if (!pending.size) break;
          if (redis.status !== 'ready') {
            const limit = queueTimeoutMs();
            if (downSince === undefined) {
              downSince = Date.now();
              req.warn(`waiting for Redis at ${url} (${lastError || redis.status}): ${pending.size} chunks to go; reconnecting, giving up after ${limit / 1000} s (TLPIPE_QUEUE_TIMEOUT)`);
            }
            if (Date.now() - downSince > limit) {
              throw new QueueUnavailable(`Redis at ${url} has been unreachable for ${Math.round(limit / 1000)} s (${lastError}); ${pending.size} chunks were not computed. The chunks finished so far are kept: run again when Redis is back, or without --queue to compute on this machine.`);
            }
            continue;
          }
          if (downSince !== undefined) req.log(`Redis at ${url} is back; checking which jobs it still holds`);
          downSince = undefined;
          if (Date.now() - lastStateCheck < STATE_CHECK_MS) continue;
          lastStateCheck = Date.now();
          // Redis may have lost everything: register the queue again, and add what it forgot.
          await redis.hset(keys.requirements, reqId, JSON.stringify(requirements));
          await reportRefusals();
          // A run that only coordinates still never waits for nobody: with no live worker on the queue, it works itself.
          if (!localStarted && Date.now() - addedAt > DISCOVERY_GRACE_MS && (await serving()) === 0) {
            req.warn(`no live worker takes this queue's jobs${refusals.size ? ` (${refusals.size} refused)` : ''}; this run computes them itself`);
            startLocal(1);
          }
          const lost: string[] = [];
          for (const id of [...pending]) {
            const state = await queue.getJobState(id);
            if (state === 'unknown') lost.push(id);
            else if (state === 'completed' && !(await take(id, 'later'))) {
              await queue.remove(id).catch(() => undefined);
              // A result that was there but refused (damaged, unsigned) is not asked for again and again.
              if (rejected.has(id)) await computeHere(id, true);
              else lost.push(id);
            } else if (state === 'failed') {
              const job = await queue.getJob(id);
              req.warn(`job ${id.slice(0, 15)}… failed on the queue (${job?.failedReason ?? 'no reason given'}); this run computes it itself`);
              await computeHere(id, true);
              await queue.remove(id).catch(() => undefined);
            }
          }
          if (lost.length) {
            req.log(`${lost.length} chunk jobs were not in Redis and not in the remote: added again`);
            await add(lost);
          }
        }
        if (redis.status === 'ready') await reportRefusals();
      };
      try {
        await spread();
      } catch (e) {
        if (!(e instanceof RemoteError) || req.signal.aborted) throw e;
        // Without the remote the workers' results cannot reach this run: it computes what is left, as without --queue.
        req.warn(`the remote ${exchange.name} cannot be reached (${errorMessage(e)}); this run computes the ${pending.size} chunks still missing itself`);
        await Promise.all(localWorkers.map((w) => w.close().catch(() => undefined)));
        for (const id of [...pending]) {
          if (req.signal.aborted) throw new Interrupted();
          await computeHere(id, false);
        }
      }
      return report;
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      stopping.abort();
      for (const close of closers) await close().catch(() => undefined);
    }
  }

  private async waitForRedis(redis: Redis, url: string, lastError: () => string, req: FeatureRequest): Promise<void> {
    if (redis.status === 'ready') return;
    const limit = queueTimeoutMs();
    const started = Date.now();
    let told = false;
    while ((redis.status as string) !== 'ready') {
      if (req.signal.aborted) throw new Interrupted();
      if (!told && Date.now() - started > 1000) {
        told = true;
        req.warn(`waiting for Redis at ${url} (${lastError() || redis.status}); reconnecting, giving up after ${limit / 1000} s (TLPIPE_QUEUE_TIMEOUT)`);
      }
      if (Date.now() - started > limit) {
        throw new QueueUnavailable(`Redis at ${url} could not be reached in ${Math.round(limit / 1000)} s (${lastError() || redis.status}). Start redis-server there (see README, "Running on several machines"), or run without --queue.`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
