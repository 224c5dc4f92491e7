// The run's side of a sweep spread over the queue (`run --queue` with more
// than one combination). Once the first combination has run, the stages the
// combinations share (dataset, features, the head's definition...) are in the
// remote; the training and evaluation of every other combination are then
// added as member jobs (sweep-job.ts), worked on by the workers and by the run
// itself, and the run waits until each is in the remote or has failed. The
// combinations then run one by one as before and find those stages pulled or
// cached; whatever a job did not deliver is computed there, so the sweep's
// results are the ones a one-machine sweep gives.
import { Queue, Worker } from 'bullmq';
import os from 'node:os';
import type { RemoteCache } from '../remote/cache.js';
import { errorMessage, Interrupted } from '../runner/errors.js';
import type { StepRegistry } from '../runner/registry.js';
import type { ArtifactStore } from '../runner/store.js';
import { connect, displayUrl, PREFIX, parseQueueUrl, queueTimeoutMs, reconnectDelay, STATE_CHECK_MS, DISCOVERY_GRACE_MS, workersServing } from './connection.js';
import { externalInputs, type MemberJobData, memberJobId, type MemberOutcome, MEMBERS_QUEUE, memberProcessor } from './sweep-job.js';

export interface MemberSpreadOptions {
  queueUrl: string;
  /** Jobs the run works on at once itself (0: it only coordinates). */
  localConcurrency: number;
  store: ArtifactStore;
  /** Opens the run's remote anew (one per job the run computes, one to watch). */
  openRemote(): RemoteCache;
  steps: StepRegistry;
  signal: AbortSignal;
  log(message: string): void;
}

export interface MemberSpreadReport {
  jobs: number;
  /** Members whose stages reached the remote (or this store) through the queue. */
  delivered: number;
  /** Members that failed on the queue or were not tried: the run computes them as it goes. */
  left: number;
}

const POLL_MS = 300;

export async function spreadMembers(members: MemberJobData[], options: MemberSpreadOptions): Promise<MemberSpreadReport> {
  const remote = options.openRemote();
  const url = displayUrl(options.queueUrl);
  const report: MemberSpreadReport = { jobs: 0, delivered: 0, left: 0 };
  let failed = 0;
  const readds = new Map<string, number>();
  let lastError = '';
  const redis = connect(options.queueUrl, (e) => (lastError = errorMessage(e)));
  const closers: (() => Promise<unknown>)[] = [async () => redis.disconnect(), async () => remote.close()];
  const stopping = new AbortController();
  const onAbort = () => stopping.abort();
  options.signal.addEventListener('abort', onAbort, { once: true });
  try {
    // Only members whose outside inputs the remote holds can be computed elsewhere.
    const ready: MemberJobData[] = [];
    for (const m of members) {
      let ok = true;
      for (const fp of externalInputs(m)) if (!(await remote.has(fp))) ok = false;
      if (ok) ready.push(m);
    }
    report.left = members.length - ready.length;
    if (report.left) {
      options.log(
        `${report.left} sweep member(s) need artifacts the remote ${remote.name} does not hold (a dataset listed with absolute paths stays on this machine; keep the data inside the project to share it): this run computes them`,
      );
    }
    if (!ready.length) return report;
    const started = Date.now();
    while (redis.status !== 'ready') {
      if (options.signal.aborted) throw new Interrupted();
      // The sweep goes on without the queue: each combination computes its own members.
      if (Date.now() - started > Math.min(queueTimeoutMs(), 10_000)) {
        options.log(`queue ${url}: Redis cannot be reached (${lastError || redis.status}); the sweep's members are computed here, one after another`);
        report.left = members.length;
        return report;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const jobs = new Map(ready.map((m) => [memberJobId(m), m]));
    const connection = { ...parseQueueUrl(options.queueUrl), maxRetriesPerRequest: null, retryStrategy: reconnectDelay };
    const queue = new Queue<MemberJobData, MemberOutcome>(MEMBERS_QUEUE, { connection, prefix: PREFIX });
    queue.on('error', (e) => (lastError = errorMessage(e)));
    closers.push(() => queue.close());
    const add = (ids: string[]) =>
      queue.addBulk(
        ids.map((id) => ({
          name: 'member',
          data: jobs.get(id)!,
          opts: { jobId: id, attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 3600 }, removeOnFail: { age: 3600 } },
        })),
      );
    const pending = new Set(jobs.keys());
    /** A member is delivered when every one of its stages is in this store or in the remote. */
    const delivered = async (id: string) => {
      for (const s of jobs.get(id)!.stages) {
        if ((await options.store.lookup(s.fingerprint, 'quick')).found) continue;
        if (!(await remote.has(s.fingerprint))) return false;
      }
      return true;
    };
    for (const id of [...pending]) if (await delivered(id)) pending.delete(id);
    report.jobs = jobs.size;
    report.delivered = jobs.size - pending.size;
    if (!pending.size) return report;
    await add([...pending]);
    options.log(`queue ${url}: ${pending.size} sweep members (training and evaluation of ${[...pending].map((id) => jobs.get(id)!.label).join('; ')}) added to queue ${MEMBERS_QUEUE}`);
    let localStarted = false;
    const startLocal = (concurrency: number) => {
      localStarted = true;
      const worker = `${os.hostname()}-${process.pid}-run`;
      const local = new Worker<MemberJobData, MemberOutcome>(
        MEMBERS_QUEUE,
        memberProcessor({ worker, store: options.store, openRemote: options.openRemote, steps: options.steps, stopping: stopping.signal, say: () => undefined }),
        { connection, prefix: PREFIX, concurrency },
      );
      local.on('error', (e) => (lastError = errorMessage(e)));
      closers.unshift(() => local.close());
    };
    if (options.localConcurrency > 0) startLocal(options.localConcurrency);
    const addedAt = Date.now();
    /** Live workers (by their leases) that take member jobs. */
    const serving = () => workersServing(redis, MEMBERS_QUEUE);
    let lastCheck = 0;
    let downSince: number | undefined;
    while (pending.size) {
      if (options.signal.aborted) throw new Interrupted();
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (redis.status !== 'ready') {
        downSince ??= Date.now();
        // Without Redis nobody is told of these jobs: the combinations compute what is missing as they run.
        if (Date.now() - downSince > queueTimeoutMs()) {
          options.log(`queue ${url}: Redis has been unreachable for ${Math.round(queueTimeoutMs() / 1000)} s (${lastError}); the ${pending.size} sweep members still missing are computed here`);
          failed += pending.size;
          pending.clear();
        }
        continue;
      }
      downSince = undefined;
      const done = new Set(await queue.getRanges(['completed'], 0, -1).catch(() => [] as string[]));
      for (const id of [...pending]) if (done.has(id) && (await delivered(id))) pending.delete(id);
      if (Date.now() - lastCheck < STATE_CHECK_MS) continue;
      lastCheck = Date.now();
      // A run that only coordinates never waits for nobody: with no live worker on the queue, it works itself.
      if (!localStarted && Date.now() - addedAt > DISCOVERY_GRACE_MS && (await serving()) === 0) {
        options.log(`no live worker takes sweep members; this run computes them itself`);
        startLocal(1);
      }
      const lost: string[] = [];
      for (const id of [...pending]) {
        const state = await queue.getJobState(id);
        if (state === 'failed') {
          const job = await queue.getJob(id);
          options.log(`sweep member ${jobs.get(id)!.label} failed on the queue (${job?.failedReason ?? 'no reason given'}); the run computes it itself`);
          pending.delete(id);
          failed++;
        } else if (state === 'unknown' || (state === 'completed' && !(await delivered(id)))) {
          // Redis forgot it, or it completed without its artifacts reaching the remote: add it again, a few times.
          if (state === 'completed') await queue.remove(id).catch(() => undefined);
          const n = (readds.get(id) ?? 0) + 1;
          readds.set(id, n);
          if (n > 3) {
            options.log(`sweep member ${jobs.get(id)!.label} did not reach the remote after ${n - 1} tries; the run computes it itself`);
            pending.delete(id);
            failed++;
          } else lost.push(id);
        } else if (await delivered(id)) pending.delete(id);
      }
      if (lost.length) await add(lost);
    }
    report.delivered = report.jobs - failed;
    report.left += failed;
    return report;
  } finally {
    options.signal.removeEventListener('abort', onAbort);
    stopping.abort();
    for (const close of closers) await close().catch(() => undefined);
  }
}
