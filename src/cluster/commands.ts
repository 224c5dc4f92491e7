// The cluster's commands: `tlpipe worker` (take jobs) and `tlpipe workers`
// (who is working on what), and the options `run --queue` reads.
import { Queue } from 'bullmq';
import path from 'node:path';
import { ExitCode, UsageError } from '../runner/errors.js';
import { connect, displayUrl, keys, liveWorkerStatuses, parseQueueUrl, PREFIX, QueueUnavailable, queueName, queueTimeoutMs } from './connection.js';
import { QueueCluster } from './coordinator.js';
import { findProjectDir } from '../runner/analyze.js';
import type { ResolvedRemote } from '../remote/config.js';
import { resolveRemote } from '../remote/config.js';
import type { Pipeline } from '../runner/analyze.js';
import type { StepRegistry } from '../runner/registry.js';
import { planRun, type Session } from '../runner/run.js';
import { openRemote } from '../remote/open.js';
import { ArtifactStore } from '../runner/store.js';
import { openExchange } from './exchange.js';
import { spreadMembers } from './sweep.js';
import { type MemberJobData, MEMBERS_QUEUE, memberOf } from './sweep-job.js';
import type { Requirements } from './feature-job.js';
import { defaultModelsDir, defaultWorkerName, FeatureWorker, RedisUnavailable, type WorkerStatus } from './worker.js';

export interface ClusterValues {
  queue?: string;
  remote?: string;
  'data-root'?: string;
  device?: string;
  threads?: string;
  concurrency?: string;
  name?: string;
  models?: string;
  json?: boolean;
}

const say = (s: string) => process.stderr.write(`${s}\n`);
const print = (s: string) => process.stdout.write(`${s}\n`);

function whole(value: string | undefined, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} expects a whole number ≥ ${min}, got "${value}".`);
  return n;
}

const queueOf = (values: ClusterValues, env = process.env) => values.queue ?? env.TLPIPE_QUEUE;
const REMOTE_HINT = 'a remote named in tlpipe.json (tlpipe remote add NAME URL), file:///shared/folder or s3://bucket/prefix';

/**
 * The cluster a run spreads work over, when --queue (or TLPIPE_QUEUE) is
 * given; `remote` is the run's own remote (--remote, TLPIPE_REMOTE or the
 * project's default), the one its workers must use too.
 */
export function clusterForRun(values: ClusterValues, remote: ResolvedRemote | undefined, env = process.env): QueueCluster | undefined {
  const queue = queueOf(values, env);
  if (!queue) return undefined;
  parseQueueUrl(queue);
  if (!remote) throw new UsageError(`--queue needs a remote where workers put their results: give --remote NAME|URL (${REMOTE_HINT}) or set TLPIPE_REMOTE.`);
  if (remote.readOnly) throw new UsageError(`--queue needs a remote it can write to, and ${remote.name} is read-only here (its config, --remote-read-only or TLPIPE_REMOTE_READ_ONLY).`);
  const local = env.TLPIPE_QUEUE_LOCAL_JOBS === undefined ? 1 : Number(env.TLPIPE_QUEUE_LOCAL_JOBS);
  if (!Number.isInteger(local) || local < 0) throw new UsageError(`TLPIPE_QUEUE_LOCAL_JOBS must be a whole number ≥ 0, got "${env.TLPIPE_QUEUE_LOCAL_JOBS}".`);
  return new QueueCluster({ queueUrl: queue, exchange: openExchange(remote), localConcurrency: local });
}

/** After a sweep's first combination: the others' members through the queue (sweep.ts). */
export async function spreadSweep(options: {
  cluster: QueueCluster;
  remote: ResolvedRemote;
  combinations: { label: string; load(): Promise<Pipeline> }[];
  session: Session;
  steps: StepRegistry;
  signal: AbortSignal;
  say(line: string): void;
}): Promise<void> {
  const { session } = options;
  const members: MemberJobData[] = [];
  for (const c of options.combinations) {
    const plan = await planRun(await c.load(), session, {}, options.signal);
    const member = memberOf(plan, c.label);
    if (member) members.push(member);
  }
  if (!members.length) return;
  const report = await spreadMembers(members, {
    queueUrl: options.cluster.queueUrl,
    localConcurrency: options.cluster.localConcurrency,
    store: session.store,
    openRemote: () => openRemote(options.remote, session.store, { warn: (m) => session.store.warn(m) }),
    steps: options.steps,
    signal: options.signal,
    log: options.say,
  });
  if (report.jobs) options.say(`sweep members: ${report.delivered} of ${members.length} through the queue${report.left ? `; ${report.left} computed by this run as it goes` : ''}`);
}

export async function workerCommand(values: ClusterValues): Promise<number> {
  const queue = queueOf(values);
  if (!queue) throw new UsageError('Usage: tlpipe worker --queue redis://HOST:6379/0 --remote NAME|URL [--data-root DIR] [--device cpu|cuda] [--threads N] [--concurrency N]');
  parseQueueUrl(queue);
  // A name is looked up in the tlpipe.json of the project the worker is started in.
  const remote = await resolveRemote(findProjectDir(process.cwd()), { remote: values.remote });
  if (!remote) throw new UsageError(`tlpipe worker needs --remote NAME|URL (or TLPIPE_REMOTE): the remote the runs use (${REMOTE_HINT}).`);
  if (remote.readOnly) throw new UsageError(`tlpipe worker puts its results in the remote, and ${remote.name} is read-only here.`);
  const device = values.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device expects cpu or cuda, got "${device}".`);
  const modelsDir = path.resolve(values.models ?? defaultModelsDir());
  // The inputs and outputs of the sweep members it computes, beside its model copies.
  const store = await ArtifactStore.open(path.join(modelsDir, 'store'), (m) => say(`warning: ${m}`));
  const [{ stepRegistry }, { builtinSteps }, { artifactKinds }] = await Promise.all([import('../runner/registry.js'), import('../steps/index.js'), import('../artifacts/index.js')]);
  const worker = new FeatureWorker({
    queueUrl: queue,
    exchange: openExchange(remote),
    members: { store, openRemote: () => openRemote(remote, store, { warn: (m) => say(`warning: ${m}`) }), steps: stepRegistry(builtinSteps, artifactKinds) },
    dataRoot: path.resolve(values['data-root'] ?? process.cwd()),
    device,
    threads: whole(values.threads, '--threads'),
    concurrency: whole(values.concurrency, '--concurrency') ?? 1,
    name: values.name ?? defaultWorkerName(),
    modelsDir,
    say,
    // BullMQ's rule for workers is to retry Redis forever; a limit is opt-in.
    redisTimeoutMs: process.env.TLPIPE_QUEUE_TIMEOUT ? queueTimeoutMs() : 0,
  });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) {
      say('Stopped at once.');
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    say(`${sig === 'SIGINT' ? 'Ctrl-C' : sig}: handing back the job in hand and stopping… (again to stop at once)`);
    void worker.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await worker.run();
  } catch (e) {
    await worker.stop();
    if (e instanceof RedisUnavailable) throw new QueueUnavailable(`${e.message}. Giving up (TLPIPE_QUEUE_TIMEOUT).`);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  await worker.stop();
  return ExitCode.ok;
}

export async function workersCommand(values: ClusterValues): Promise<number> {
  const queue = queueOf(values);
  if (!queue) throw new UsageError('Usage: tlpipe workers --queue redis://HOST:6379/0 [--json]');
  let lastError = '';
  const redis = connect(queue, (e) => (lastError = e.message));
  try {
    const started = Date.now();
    while (redis.status !== 'ready') {
      if (Date.now() - started > Math.min(queueTimeoutMs(), 10_000)) throw new QueueUnavailable(`Redis at ${displayUrl(queue)} could not be reached (${lastError || redis.status}).`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const workers = await liveWorkerStatuses<WorkerStatus>(redis);
    workers.sort((a, b) => a.name.localeCompare(b.name));
    const queues: { id: string; model: string; counts: Record<string, number> }[] = [];
    for (const [id, text] of Object.entries(await redis.hgetall(keys.requirements))) {
      const q = new Queue(queueName(id), { connection: redis, prefix: PREFIX });
      const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
      await q.close();
      queues.push({ id, model: (JSON.parse(text) as Requirements).model.sha256, counts });
    }
    const mq = new Queue(MEMBERS_QUEUE, { connection: redis, prefix: PREFIX });
    const members = await mq.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
    await mq.close();
    if (values.json) {
      print(JSON.stringify({ workers, queues, members }, null, 2));
      return ExitCode.ok;
    }
    if (!workers.length) print('No live workers.');
    for (const w of workers) {
      const holds = w.holds.length ? w.holds.map((h) => `${h.job.slice(0, 15)}… ${h.done}/${h.images}`).join(', ') : 'idle';
      print(`${w.name}  ${w.device}${w.cudaVisibleDevices !== null ? ` (CUDA_VISIBLE_DEVICES=${w.cudaVisibleDevices})` : ''}  ${w.imagesPerSecond} images/s  ${w.jobsDone} jobs done  holds: ${holds}`);
      for (const [req, why] of Object.entries(w.refused)) print(`  refuses queue ${req}: ${why}`);
    }
    for (const q of queues) {
      const c = q.counts;
      print(`queue ${q.id} (model ${q.model.slice(0, 12)}…): ${c.waiting ?? 0} waiting, ${c.active ?? 0} running, ${c.delayed ?? 0} delayed, ${c.failed ?? 0} failed, ${c.completed ?? 0} completed`);
    }
    const m = members;
    if (Object.values(m).some((n) => n > 0)) print(`queue ${MEMBERS_QUEUE}: ${m.waiting ?? 0} waiting, ${m.active ?? 0} running, ${m.delayed ?? 0} delayed, ${m.failed ?? 0} failed, ${m.completed ?? 0} completed`);
    return ExitCode.ok;
  } finally {
    redis.disconnect();
  }
}
