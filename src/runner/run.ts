// One run, end to end: load → analyse → plan → execute → record.
import path from 'node:path';
import type { Cluster } from '../cluster/coordinator.js';
import { type Pipeline, analyze } from './analyze.js';
import type { EventSink } from './events.js';
import { type Executor, LocalExecutor } from './executor.js';
import { canonicalJson } from './fingerprint.js';
import { loadPipelineSource } from './load.js';
import { PathHasher } from './path-hasher.js';
import type { StepRegistry } from './registry.js';
import { type Plan, type PlanOptions, lastFingerprintsFile, makePlan } from './plan.js';
import { type RunRecord, RUN_FORMAT, RunRecords, gitState, newRunId, pipelineHash } from './runs.js';
import { maskSecrets } from './secrets.js';
import type { RemoteCache } from '../remote/cache.js';
import { ArtifactStore } from './store.js';

export interface LoadOptions {
  set?: string[];
  env?: Record<string, string | undefined>;
}

/** Loads and analyses a pipeline file against the built-in steps given (and the user steps it names). */
export async function loadPipeline(file: string, steps: StepRegistry, options: LoadOptions = {}): Promise<Pipeline> {
  return analyze(await loadPipelineSource(file, options), steps);
}

/** `--cache-dir`, else TLPIPE_CACHE_DIR, else `.tlpipe/` in the pipeline's project. */
export function cacheDirFor(pipeline: Pipeline | undefined, cacheDir?: string, env = process.env): string {
  if (cacheDir) return path.resolve(cacheDir);
  if (env.TLPIPE_CACHE_DIR) return path.resolve(env.TLPIPE_CACHE_DIR);
  return path.join(pipeline?.projectDir ?? process.cwd(), '.tlpipe');
}

export interface Session {
  store: ArtifactStore;
  hasher: PathHasher;
}

export async function openSession(root: string, onWarning?: (m: string) => void): Promise<Session> {
  const store = await ArtifactStore.open(root, onWarning);
  const hasher = new PathHasher(path.join(store.root, 'state', 'path-hashes.json'));
  await hasher.load();
  // Cached objects whose stat proves them unchanged since they were last hashed are not re-hashed.
  store.hashObject = (file, stat) => hasher.hashFile(file, stat);
  store.rememberObject = (file, stat, sha) => hasher.remember(file, stat, sha);
  return { store, hasher };
}

export async function planRun(pipeline: Pipeline, session: Session, options: PlanOptions, signal: AbortSignal): Promise<Plan> {
  const plan = await makePlan(pipeline, session.store, session.hasher, options, signal);
  await session.hasher.save((f, t) => session.store.writeAtomic(f, t));
  return plan;
}

export interface RunOptions extends PlanOptions {
  set?: string[];
  jobs?: number;
  signal: AbortSignal;
  emit: EventSink;
  executor?: Executor;
  /** The remote cache: stages missing here are pulled from it, what runs is pushed to it. */
  remote?: RemoteCache;
  /** Spreads work over other machines (`run --queue`). */
  cluster?: Cluster;
}

export async function runPipeline(pipeline: Pipeline, session: Session, options: RunOptions): Promise<{ plan: Plan; record: RunRecord }> {
  const { store } = session;
  const startedAt = new Date();
  const runId = newRunId(startedAt);
  // Asked now, answered while the stages run: the commit the run started from, at no cost to a cached run's time.
  const git = gitState(pipeline.projectDir);
  const unlockRun = await store.lock(`run-${runId}`);
  try {
    const plan = await planRun(pipeline, session, options, options.signal);
    options.emit({
      type: 'plan',
      stages: plan.stages.map((s) => ({ name: s.stage.name, state: s.state, reason: s.reason, fingerprint: s.fingerprint })),
    });
    const executor = options.executor ?? new LocalExecutor(store, session.hasher, options.jobs ?? 2, options.remote, options.cluster);
    const outcomes = await executor.execute(plan, { runId, signal: options.signal, emit: options.emit });
    const failed = outcomes.some((o) => o.status === 'failed');
    const record: RunRecord = {
      format: RUN_FORMAT,
      id: runId,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      status: options.signal.aborted ? 'interrupted' : failed ? 'failed' : 'succeeded',
      pipeline: {
        name: pipeline.name,
        file: path.relative(pipeline.projectDir, pipeline.file),
        sha256: pipelineHash(pipeline.source.files.map((f) => f.text)),
        extends: pipeline.source.files.slice(1).map((f) => path.relative(pipeline.projectDir, f.path)),
      },
      params: pipeline.params,
      set: options.set ?? [],
      git: await git,
      stages: outcomes,
      outputs: [...new Set(outcomes.flatMap((o) => o.outputs))],
      warnings: [...store.warnings],
    };
    await new RunRecords(store).save(record);
    // The remote keeps the records of runs that used it: what its gc keeps. A
    // fully cached run does not touch the remote at all (no SDK loaded, no request).
    if (options.remote?.writable && outcomes.some((o) => o.status === 'ran' || o.status === 'pulled')) await options.remote.pushRun(maskSecrets(record));
    const last = Object.fromEntries(plan.stages.map((s) => [s.stage.name, s.fingerprint]));
    await store.writeAtomic(lastFingerprintsFile(store, pipeline.file), canonicalJson(last));
    await session.hasher.save((f, t) => store.writeAtomic(f, t));
    // What callers show or write (the --json summary, the HTML report beside the
    // outputs) must not carry secrets either: the record as it was saved.
    return { plan, record: maskSecrets(record) };
  } finally {
    await unlockRun();
  }
}
