// `tlpipe worker`: a long-running process that takes features chunk jobs from
// Redis (BullMQ) and puts the results in the remote. It finds the queues runs
// have opened (one per model + runtime), takes only those whose model it holds
// byte for byte and whose runtime it matches, and refuses the others once,
// naming itself, so a mismatched machine never contributes a wrong result and
// never spins on jobs it must not take. Liveness is a lease in Redis that
// expires, never a pid.
import { type Job, Worker } from 'bullmq';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { errorMessage } from '../runner/errors.js';
import { connect, displayUrl, keys, lockDurationMs, parseQueueUrl, PREFIX, queueName, reconnectDelay } from './connection.js';
import type { Exchange } from './exchange.js';
import type { FeatureJobData, Requirements } from './feature-job.js';
import { RedisUnavailable } from './failures.js';
import { ModelCache } from './model-cache.js';
import { featureProcessor, type JobSummary } from './processor.js';
import { runtimeMismatch, runtimeVersions } from './runtime.js';
import { SessionCache } from './sessions.js';
import { type MemberJobData, type MemberOutcome, MEMBERS_QUEUE, memberProcessor } from './sweep-job.js';
import type { RemoteCache } from '../remote/cache.js';
import type { StepRegistry } from '../runner/registry.js';
import type { ArtifactStore } from '../runner/store.js';

export interface WorkerOptions {
  queueUrl: string;
  exchange: Exchange;
  /** Folder that jobs' data root means on this machine. */
  dataRoot: string;
  device: 'cpu' | 'cuda';
  /** onnxruntime intra-op threads per job. */
  threads?: number;
  /** Jobs at once. */
  concurrency: number;
  name: string;
  /** This machine's model copies. */
  modelsDir: string;
  say(line: string): void;
  /** Give up when Redis stays unreachable this long (0: never, the default). */
  redisTimeoutMs: number;
  /** Sweep members (training, evaluation) too: this machine's store for their inputs, the remote, the steps. */
  members?: { store: ArtifactStore; openRemote(): RemoteCache; steps: StepRegistry };
}

/** What `tlpipe workers` shows about one worker; refreshed every heartbeat. */
export interface WorkerStatus {
  name: string;
  host: string;
  device: string;
  threads: number | null;
  concurrency: number;
  cudaVisibleDevices: string | null;
  since: string;
  queues: string[];
  refused: { [requirements: string]: string };
  holds: { job: string; images: number; done: number; since: string }[];
  jobsDone: number;
  imagesDone: number;
  /** Images per second over the jobs finished in the last minute. */
  imagesPerSecond: number;
}

export const HEARTBEAT_MS = 2000;
const LEASE_MS = 10_000;

export class FeatureWorker {
  readonly #options: WorkerOptions;
  readonly #redis: Redis;
  readonly #models: ModelCache;
  readonly #stop = new AbortController();
  readonly #sessions = new SessionCache();
  readonly #queues = new Map<string, Worker<FeatureJobData, JobSummary>>();
  readonly #refused = new Map<string, string>();
  readonly #pending = new Map<string, string>();
  readonly #holds = new Map<string, { job: string; images: number; done: number; since: string }>();
  readonly #finished: { at: number; images: number; ms: number }[] = [];
  #jobsDone = 0;
  #imagesDone = 0;
  #timer: NodeJS.Timeout | undefined;
  #downSince: number | undefined;
  #lastError = '';
  readonly #since = new Date().toISOString();
  readonly #runtime;
  #fatal: ((e: Error) => void) | undefined;

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.#runtime = runtimeVersions(options.device);
    this.#models = new ModelCache(options.modelsDir, options.exchange);
    this.#redis = connect(options.queueUrl, (e) => this.#onRedisError(e));
    this.#redis.on('ready', () => {
      if (this.#downSince !== undefined) options.say(`Redis at ${displayUrl(options.queueUrl)} is back; resuming`);
      this.#downSince = undefined;
    });
  }

  get name(): string {
    return this.#options.name;
  }

  #onRedisError(e: Error): void {
    const message = errorMessage(e);
    if (this.#downSince === undefined) {
      this.#downSince = Date.now();
      const limit = this.#options.redisTimeoutMs ? `, giving up after ${Math.round(this.#options.redisTimeoutMs / 1000)} s` : '';
      this.#options.say(`waiting for Redis at ${displayUrl(this.#options.queueUrl)} (${message}); reconnecting${limit}`);
    } else if (message !== this.#lastError) this.#options.say(`still waiting for Redis: ${message}`);
    this.#lastError = message;
  }

  /** Runs until stop() or a fatal error (Redis gone past the timeout). */
  async run(): Promise<void> {
    const { say } = this.#options;
    say(
      `worker ${this.name}: queue ${displayUrl(this.#options.queueUrl)}, remote ${this.#options.exchange.name}, data root ${this.#options.dataRoot}, ` +
        `device ${this.#options.device}${process.env.CUDA_VISIBLE_DEVICES !== undefined ? ` (CUDA_VISIBLE_DEVICES=${process.env.CUDA_VISIBLE_DEVICES})` : ''}, ` +
        `${this.#options.threads ?? 'default'} threads, ${this.#options.concurrency} job(s) at once`,
    );
    const fatal = new Promise<never>((_, reject) => (this.#fatal = reject));
    fatal.catch(() => undefined);
    const tick = async () => {
      try {
        await this.#tick();
      } catch (e) {
        if (!this.#stop.signal.aborted) this.#fatal?.(e as Error);
      }
      if (!this.#stop.signal.aborted) this.#timer = setTimeout(tick, HEARTBEAT_MS / 4);
    };
    void tick();
    await Promise.race([new Promise<void>((resolve) => this.#stop.signal.addEventListener('abort', () => resolve(), { once: true })), fatal]);
  }

  async #tick(): Promise<void> {
    if (this.#downSince !== undefined && this.#options.redisTimeoutMs && Date.now() - this.#downSince > this.#options.redisTimeoutMs) {
      throw new RedisUnavailable(`Redis at ${displayUrl(this.#options.queueUrl)} has been unreachable for ${Math.round((Date.now() - this.#downSince) / 1000)} s (${this.#lastError})`);
    }
    if (this.#redis.status !== 'ready') return;
    this.#openMembers();
    await this.#discover();
    await this.#redis.set(keys.worker(this.name), JSON.stringify(this.status()), 'PX', LEASE_MS);
  }

  /** Opens a BullMQ worker for each new queue this machine can serve; refuses the others once. */
  async #discover(): Promise<void> {
    const all = await this.#redis.hgetall(keys.requirements);
    for (const [req, text] of Object.entries(all)) {
      if (this.#queues.has(req) || this.#refused.has(req)) continue;
      let requirements: Requirements;
      try {
        requirements = JSON.parse(text) as Requirements;
      } catch {
        continue;
      }
      if (requirements.signedResults && !this.#options.exchange.signed) {
        await this.#refuse(req, 'the run signs its results and checks them with TLPIPE_REMOTE_KEY, which is not set here: start this worker with the same key');
        continue;
      }
      const mismatch = runtimeMismatch(requirements.runtime, this.#runtime);
      if (mismatch.length) {
        await this.#refuse(req, `its runtime differs: ${mismatch.join('; ')}`);
        continue;
      }
      const model = await this.#models.ensure(requirements.model);
      if (!model.ok) {
        if (model.refuse) await this.#refuse(req, model.reason);
        else if (this.#pending.get(req) !== model.reason) {
          this.#pending.set(req, model.reason);
          this.#options.say(`queue ${req}: ${model.reason}; will look again`);
        }
        continue;
      }
      this.#pending.delete(req);
      this.#open(req, requirements);
    }
  }

  #members: Worker<MemberJobData, MemberOutcome> | undefined;

  /** The sweep members' queue: one for every run, each job checked against this tlpipe's steps. */
  #openMembers(): void {
    const m = this.#options.members;
    if (!m || this.#members) return;
    const opts = this.#options;
    this.#members = new Worker<MemberJobData, MemberOutcome>(
      MEMBERS_QUEUE,
      memberProcessor({
        worker: this.name,
        store: m.store,
        openRemote: m.openRemote,
        steps: m.steps,
        stopping: this.#stop.signal,
        say: opts.say,
        onEnd: (_job, outcome) => {
          if (!('error' in outcome) && outcome.ran.length) this.#jobsDone++;
        },
      }),
      {
        connection: { ...parseQueueUrl(opts.queueUrl), maxRetriesPerRequest: null, retryStrategy: reconnectDelay },
        prefix: PREFIX,
        concurrency: 1,
        lockDuration: lockDurationMs(),
        stalledInterval: lockDurationMs(),
        maxStalledCount: 10,
      },
    );
    this.#members.on('error', (e) => {
      if (!this.#stop.signal.aborted && this.#downSince === undefined) opts.say(`queue ${MEMBERS_QUEUE}: ${errorMessage(e)}`);
    });
  }

  async #refuse(req: string, reason: string): Promise<void> {
    if (this.#refused.has(req)) return;
    this.#refused.set(req, reason);
    this.#options.say(`worker ${this.name} refuses the jobs of queue ${req}: ${reason}`);
    await this.#redis.hset(keys.refusals(req), this.name, reason);
  }

  #open(req: string, requirements: Requirements): void {
    const opts = this.#options;
    const processor = featureProcessor({
      worker: this.name,
      exchange: opts.exchange,
      dataRoot: opts.dataRoot,
      intraOpThreads: opts.threads,
      sessions: this.#sessions,
      refused: () => this.#refused.has(req),
      stopping: this.#stop.signal,
      model: async (data) => {
        // Checked again before every job: the copy on disk may have changed since.
        const copy = await this.#models.ensure(data.requirements.model);
        return copy.ok ? copy : { ok: false, reason: copy.reason };
      },
      onStart: (job) => {
        this.#holds.set(job.id!, { job: job.id!, images: job.data.images.length, done: 0, since: new Date().toISOString() });
        opts.say(`job ${job.id!.slice(0, 15)}…: started, ${job.data.images.length} images`);
      },
      onProgress: (job, done) => {
        const h = this.#holds.get(job.id!);
        if (h) h.done = done;
      },
      onEnd: (job, outcome) => this.#ended(job, outcome),
      onRefuse: (reason) => {
        void this.#refuse(req, reason).then(() => this.#close(req));
      },
    });
    const worker = new Worker<FeatureJobData, JobSummary>(queueName(req), processor, {
      connection: { ...parseQueueUrl(opts.queueUrl), maxRetriesPerRequest: null, retryStrategy: reconnectDelay },
      prefix: PREFIX,
      concurrency: opts.concurrency,
      lockDuration: lockDurationMs(),
      stalledInterval: lockDurationMs(),
      // A job whose worker died is handed to another one this many times before it fails.
      maxStalledCount: 10,
    });
    worker.on('error', (e) => {
      if (!this.#stop.signal.aborted && this.#downSince === undefined) this.#options.say(`queue ${req}: ${errorMessage(e)}`);
    });
    this.#queues.set(req, worker);
    this.#options.say(`taking jobs of queue ${req} (model ${requirements.model.sha256.slice(0, 12)}…, verified)`);
  }

  async #close(req: string): Promise<void> {
    const w = this.#queues.get(req);
    this.#queues.delete(req);
    await w?.close().catch(() => undefined);
  }

  #ended(job: Job<FeatureJobData>, outcome: JobSummary | { error: string }): void {
    this.#holds.delete(job.id!);
    const short = job.id!.slice(0, 15);
    if ('error' in outcome) {
      this.#options.say(`job ${short}…: ${outcome.error}`);
      return;
    }
    if (outcome.reused) {
      this.#options.say(`job ${short}…: already in the remote, not computed again`);
      return;
    }
    this.#jobsDone++;
    this.#imagesDone += outcome.images;
    const now = Date.now();
    this.#finished.push({ at: now, images: outcome.images, ms: outcome.ms });
    while (this.#finished.length && now - this.#finished[0]!.at > 60_000) this.#finished.shift();
    const rate = outcome.images / Math.max(outcome.ms / 1000, 1e-3);
    this.#options.say(
      `job ${short}…: ${outcome.images} images in ${(outcome.ms / 1000).toFixed(1)} s (${rate.toFixed(1)} images/s)` +
        `${outcome.failed ? `, ${outcome.failed} undecodable` : ''}; ${this.#jobsDone} jobs, ${this.#imagesDone} images so far`,
    );
  }

  status(): WorkerStatus {
    const recent = this.#finished;
    const images = recent.reduce((s, f) => s + f.images, 0);
    const ms = recent.reduce((s, f) => s + f.ms, 0);
    return {
      name: this.name,
      host: os.hostname(),
      device: this.#options.device,
      threads: this.#options.threads ?? null,
      concurrency: this.#options.concurrency,
      cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null,
      since: this.#since,
      queues: [...this.#queues.keys(), ...(this.#members ? [MEMBERS_QUEUE] : [])],
      refused: Object.fromEntries(this.#refused),
      holds: [...this.#holds.values()],
      jobsDone: this.#jobsDone,
      imagesDone: this.#imagesDone,
      imagesPerSecond: ms ? Math.round((images / (ms / 1000)) * this.#options.concurrency * 10) / 10 : 0,
    };
  }

  /** Hands back the jobs in hand (they go back to the queue), closes, and removes the lease. */
  #stopped: Promise<void> | undefined;
  stop(): Promise<void> {
    this.#stopped ??= this.#shutDown();
    return this.#stopped;
  }

  async #shutDown(): Promise<void> {
    this.#stop.abort();
    clearTimeout(this.#timer);
    const held = this.#holds.size;
    await Promise.all([...this.#queues.values(), ...(this.#members ? [this.#members] : [])].map((w) => w.close().catch(() => undefined)));
    await this.#sessions.closeAll();
    this.#options.exchange.close();
    if (this.#redis.status === 'ready') await this.#redis.del(keys.worker(this.name)).catch(() => undefined);
    this.#redis.disconnect();
    this.#options.say(`worker ${this.name} stopped${held ? `; ${held} job(s) handed back to the queue` : ''}`);
  }
}

export { RedisUnavailable };

export const defaultWorkerName = () => `${os.hostname()}-${process.pid}`;
export const defaultModelsDir = () => path.join(os.homedir(), '.cache', 'tlpipe', 'worker-models');
