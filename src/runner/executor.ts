// Execution: runs a Plan's stages, independent ones concurrently (bounded).
// The Executor interface is what a distributed engine would implement later:
// a stage receives its inputs and hands back its outputs only through the
// artifact store, never through memory shared with other stages.
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isExpectedFailure } from '../failure.js';
import { describeFsError, errorMessage, ServiceUnavailable, StepFailure, StoreError } from './errors.js';
import { describeFailure, failureExitCode, type StageFailure, StageBug, type StageOutcome } from './outcome.js';
import type { EventSink } from './events.js';
import { SharedChunkLog } from '../remote/chunks.js';
import type { RemoteCache } from '../remote/cache.js';
import type { PathHasher } from './path-hasher.js';
import { type Plan, type PlannedStage, planContext } from './plan.js';
import type { Artifact, StepContext, StepResult } from './step.js';
import type { Cluster } from '../cluster/coordinator.js';
import { type ArtifactEntry, type ArtifactStore, isAlive } from './store.js';

export interface ExecuteOptions {
  runId: string;
  signal: AbortSignal;
  emit: EventSink;
}

export interface Executor {
  execute(plan: Plan, options: ExecuteOptions): Promise<StageOutcome[]>;
}

export class LocalExecutor implements Executor {
  constructor(
    private readonly store: ArtifactStore,
    private readonly hasher: PathHasher,
    private readonly jobs = 2,
    /** Pull-before-run and push-after-run (remote/cache.ts); none: local only. */
    private readonly remote?: RemoteCache,
    private readonly cluster?: Cluster,
  ) {}

  /** Pushes still under way; the run waits for them before it ends. */
  private readonly pushes: Promise<unknown>[] = [];

  async execute(plan: Plan, options: ExecuteOptions): Promise<StageOutcome[]> {
    const outcomes = new Map<string, Promise<StageOutcome>>();
    const artifacts = new Map<string, Artifact>();
    const notSelected = new Set(plan.stages.filter((s) => s.state === 'skip').map((s) => s.stage.name));
    let running = 0;
    const queue: (() => void)[] = [];
    const slot = async () => {
      if (running >= this.jobs) await new Promise<void>((r) => queue.push(r));
      running++;
    };
    const release = () => {
      running--;
      queue.shift()?.();
    };

    for (const planned of plan.stages) {
      const upstream = Object.values(planned.stage.inputs).map((p) => outcomes.get(p)!);
      outcomes.set(
        planned.stage.name,
        (async () => {
          const results = await Promise.all(upstream);
          if (options.signal.aborted) return this.skipped(planned, 'interrupted', options);
          const failed = results.find((r) => r.status === 'failed' || (r.status === 'skipped' && !notSelected.has(r.name)));
          if (failed) return this.skipped(planned, `"${failed.name}" did not finish`, options);
          const missing = results.find((r) => !artifacts.has(r.name));
          if (missing && planned.state !== 'skip') {
            if (this.remote?.unreachable) {
              const message = `the artifact of "${missing.name}" is not in the local cache and the remote ${this.remote.name} cannot be reached (${this.remote.unreachable}); run without --only to compute it here`;
              return this.failed(planned, { reason: 'remote-unreachable', message }, options);
            }
            return this.failed(planned, { reason: 'upstream-missing', message: `the artifact of "${missing.name}" is not in the cache: run without --only first` }, options);
          }
          await slot();
          try {
            return await this.runStage(plan, planned, artifacts, options);
          } finally {
            release();
          }
        })(),
      );
    }
    const all = await Promise.all([...outcomes.values()]);
    await Promise.all(this.pushes);
    return all;
  }

  private skipped(planned: PlannedStage, reason: string, options: ExecuteOptions): StageOutcome {
    options.emit({ type: 'stage-end', stage: planned.stage.name, status: 'skipped', durationMs: 0, fingerprint: planned.fingerprint });
    return {
      name: planned.stage.name,
      uses: planned.stage.uses,
      ...kindOf(planned),
      status: 'skipped',
      fingerprint: planned.fingerprint,
      reason,
      durationMs: 0,
      metrics: {},
      outputs: [],
    };
  }

  private failed(planned: PlannedStage, failure: StageFailure, options: ExecuteOptions): StageOutcome {
    const { name, uses } = planned.stage;
    const error = describeFailure(failure);
    options.emit({ type: 'stage-end', stage: name, status: 'failed', durationMs: 0, fingerprint: planned.fingerprint, error, failure });
    const exitCode = failureExitCode(failure);
    return { name, uses, ...kindOf(planned), status: 'failed', fingerprint: planned.fingerprint, reason: planned.reason, durationMs: 0, metrics: {}, outputs: [], error, failure, ...(exitCode ? { exitCode } : {}) };
  }

  private async runStage(plan: Plan, planned: PlannedStage, artifacts: Map<string, Artifact>, options: ExecuteOptions): Promise<StageOutcome> {
    const { stage, fingerprint } = planned;
    const started = performance.now();
    const base = { name: stage.name, uses: stage.uses, ...kindOf(planned), fingerprint, reason: planned.reason };
    const elapsed = () => Math.round(performance.now() - started);
    const fail = (failure: StageFailure): StageOutcome => {
      const error = describeFailure(failure);
      const exitCode = failureExitCode(failure);
      options.emit({ type: 'stage-end', stage: stage.name, status: 'failed', durationMs: elapsed(), fingerprint, error, failure });
      return { ...base, status: 'failed', durationMs: elapsed(), metrics: {}, outputs: [], error, failure, ...(exitCode ? { exitCode } : {}) };
    };
    const interrupted = (): StageOutcome => fail({ reason: 'interrupted', message: 'interrupted' });

    if (planned.state === 'skip') {
      // --only: this stage is not run, but a selected stage may need its artifact.
      let found = await this.store.lookup(fingerprint, 'full');
      if (!found.found && this.remote && (await this.remote.pull(fingerprint)).pulled) found = await this.store.lookup(fingerprint, 'quick');
      if (found.found) artifacts.set(stage.name, found.artifact);
      return this.skipped(planned, planned.reason, options);
    }

    let unlock: (() => Promise<void>) | undefined;
    try {
      // One stage fingerprint is computed by one run at a time; a second run
      // waits and then finds the artifact cached instead of redoing the work.
      unlock = await this.store.lock(`stage-${fingerprint}`, options.signal, () =>
        options.emit({ type: 'stage-waiting', stage: stage.name, message: 'waiting for another run computing this stage' }),
      );
      if (!planned.forced) {
        const found = await this.store.lookup(fingerprint, 'full');
        if (found.found) {
          const outputs = await this.publish(plan, found.entry);
          artifacts.set(stage.name, found.artifact);
          options.emit({ type: 'stage-end', stage: stage.name, status: 'cached', durationMs: elapsed(), fingerprint, metrics: found.entry.metrics });
          return { ...base, status: 'cached', durationMs: elapsed(), value: found.entry.value, metrics: found.entry.metrics, outputs };
        }
        // Not here: another machine may have computed it. Verified as it comes (remote/cache.ts).
        if (this.remote) {
          const pulled = await this.remote.pull(fingerprint, this.transferProgress(stage.name, options));
          const there = pulled.pulled ? await this.store.lookup(fingerprint, 'quick') : undefined;
          if (pulled.pulled && there?.found) {
            const outputs = await this.publish(plan, there.entry);
            artifacts.set(stage.name, there.artifact);
            const transfer = { bytes: pulled.bytes, ms: pulled.ms };
            options.emit({ type: 'stage-end', stage: stage.name, status: 'pulled', durationMs: elapsed(), fingerprint, metrics: there.entry.metrics, transfer });
            return { ...base, status: 'pulled', durationMs: elapsed(), value: there.entry.value, metrics: there.entry.metrics, outputs, transfer };
          }
        }
      }

      const inputs: { [name: string]: Artifact } = {};
      for (const [input, producer] of Object.entries(stage.inputs)) {
        const a = artifacts.get(producer);
        if (!a) return fail({ reason: 'upstream-missing', message: `the artifact of "${producer}" is not in the cache: run without --only first` });
        inputs[input] = a;
      }

      options.emit({ type: 'stage-start', stage: stage.name, reason: planned.reason });
      const outDir = await this.store.scratch(`${stage.name}-out`);
      const tmpDir = await this.store.scratch(`${stage.name}-tmp`);
      const sharedChunks: SharedChunkLog[] = [];
      try {
        const ctx = this.context(plan, planned, outDir, tmpDir, options, sharedChunks);
        let result: StepResult;
        try {
          result = await stage.step.run(ctx, stage.params, inputs);
        } catch (e) {
          // The step boundary: every exception leaves as a failure value, once.
          if (options.signal.aborted) return interrupted();
          if (e instanceof StoreError) return fail({ reason: 'cant-write', message: e.message });
          if (e instanceof ServiceUnavailable) return fail({ reason: 'unavailable', message: e.message });
          if (isWriteError(e)) return fail({ reason: 'cant-write', message: describeFsError(e, `stage "${stage.name}" was writing its output`) });
          if (e instanceof StepFailure) return fail({ reason: e.reason, message: e.message, ...e.details });
          if (isExpectedFailure(e)) return fail({ reason: e.reason, message: e.message });
          return fail(new StageBug(stage.name, stage.uses, e).failure());
        }
        options.signal.throwIfAborted();
        if (result.nothingToDo !== undefined) {
          const note = result.nothingToDo;
          options.emit({ type: 'stage-end', stage: stage.name, status: 'skipped', durationMs: elapsed(), fingerprint, note });
          return { ...base, status: 'skipped', note, durationMs: elapsed(), metrics: {}, outputs: [] };
        }
        const entry = await this.store.commit(outDir, {
          fingerprint,
          record: planned.record,
          stage: stage.name,
          createdAt: new Date().toISOString(),
          durationMs: elapsed(),
          value: result.value ?? null,
          metrics: result.metrics ?? {},
          publish: (result.publish ?? []).map((p) => ({ file: p.file, to: path.relative(plan.pipeline.projectDir, p.to) })),
          chunkScopes: result.chunkScopes ?? [],
          ...(result.machineLocal ? { machineLocal: true } : {}),
        });
        const outputs = await this.publish(plan, entry);
        const found = await this.store.lookup(fingerprint, 'quick');
        if (!found.found) return fail({ reason: 'cant-write', message: `the artifact vanished right after it was written (${found.reason})` });
        artifacts.set(stage.name, found.artifact);
        options.emit({ type: 'stage-end', stage: stage.name, status: 'ran', durationMs: elapsed(), fingerprint, metrics: entry.metrics });
        const outcome: StageOutcome = { ...base, status: 'ran', durationMs: elapsed(), value: entry.value, metrics: entry.metrics, outputs };
        if (this.remote?.writable) {
          // In the background: downstream stages need not wait. A failed push only warns.
          const remote = this.remote;
          this.pushes.push(
            remote.push(entry).then(
              (r) => {
                if (r.pushed || r.bytes) outcome.pushed = { bytes: r.bytes, ms: r.ms };
              },
              (e) => this.store.warn(`Pushing the artifact of stage "${stage.name}" failed (${errorMessage(e)}); the local result stands.`),
            ),
          );
        }
        return outcome;
      } finally {
        await Promise.all(sharedChunks.map((c) => c.flush()));
        await fs.rm(outDir, { recursive: true, force: true });
        await fs.rm(tmpDir, { recursive: true, force: true });
      }
    } catch (e) {
      // Outside the step: the store, publishing, locking.
      if (options.signal.aborted) return interrupted();
      if (e instanceof StoreError) return fail({ reason: 'cant-write', message: e.message });
      if (isExpectedFailure(e)) return fail({ reason: e.reason, message: e.message });
      return fail({ reason: 'bug', message: errorMessage(e), stack: e instanceof Error && e.stack ? e.stack : String(e) });
    } finally {
      await unlock?.();
    }
  }

  /** Pull and push progress as the stage's progress, in MB (the terminal draws a bar). */
  private transferProgress(stage: string, options: ExecuteOptions) {
    let last = 0;
    return (done: number, total: number) => {
      const now = performance.now();
      if (total < 1e6 || (now - last < 100 && done !== total)) return;
      last = now;
      options.emit({ type: 'stage-progress', stage, done: Math.round(done / 1e5) / 10, total: Math.round(total / 1e5) / 10, unit: 'MB' });
    };
  }

  private context(plan: Plan, planned: PlannedStage, outDir: string, tmpDir: string, options: ExecuteOptions, sharedChunks: SharedChunkLog[]): StepContext {
    const { stage, fingerprint } = planned;
    const projectDir = plan.pipeline.projectDir;
    let lastProgress = 0;
    return {
      ...planContext(plan.pipeline, this.hasher, options.signal),
      stage: stage.name,
      runId: options.runId,
      outDir,
      tmpDir,
      outputPath: (p: string) => insideProject(projectDir, p),
      log: (message) => options.emit({ type: 'stage-log', stage: stage.name, level: 'info', message }),
      warn: (message) => options.emit({ type: 'stage-log', stage: stage.name, level: 'warn', message }),
      fail: (message, failOptions) => new StepFailure(message, undefined, { cause: failOptions?.cause }),
      progress: (done, total, unit) => {
        const now = performance.now();
        if (now - lastProgress < 100 && done !== total) return; // keep terminals responsive
        lastProgress = now;
        options.emit({ type: 'stage-progress', stage: stage.name, done, total, unit });
      },
      chunks: (scope?: string) => {
        const local = this.store.chunkLog(scope ?? fingerprint);
        if (!this.remote) return local;
        const shared = new SharedChunkLog(local, this.remote, this.store);
        sharedChunks.push(shared);
        return shared;
      },
      ...(this.cluster ? { cluster: this.cluster } : {}),
    };
  }

  /** Copies an artifact's published files to their places, atomically, when they differ. */
  private async publish(plan: Plan, entry: ArtifactEntry): Promise<string[]> {
    const written: string[] = [];
    for (const { file, to } of entry.publish) {
      const target = insideProject(plan.pipeline.projectDir, to);
      const stored = entry.files[file];
      if (!stored) throw new StepFailure(`cannot publish "${file}" to ${to}: the stage did not write that file in its output folder`);
      const object = this.store.objectPath(stored.sha256);
      await removeStaleTemps(target);
      // A published file unchanged since it was last hashed is not read again.
      const same = await this.hasher.hashFile(target).then(
        (h) => h === stored.sha256,
        () => false,
      );
      if (!same) {
        const tmp = `${target}.tlpipe-tmp-${process.pid}`;
        try {
          await fs.mkdir(path.dirname(target), { recursive: true });
          // A copy-on-write clone where the file system has them (no second copy of a large model), else a copy.
          await fs.copyFile(object, tmp, fsConstants.COPYFILE_FICLONE);
          await fs.chmod(tmp, 0o644);
          const handle = await fs.open(tmp, 'r');
          await handle.sync().finally(() => handle.close());
          await fs.rename(tmp, target);
          // Its content is the object's: the next run's comparison above is a stat, not a read.
          this.hasher.remember(target, await fs.stat(target), stored.sha256);
        } catch (e) {
          await fs.rm(tmp, { force: true });
          throw new StoreError(describeFsError(e, `writing ${to}`), { cause: e });
        }
      }
      written.push(to);
    }
    return written;
  }
}

const kindOf = (planned: PlannedStage) => (planned.stage.step.produces ? { kind: planned.stage.step.produces } : {});

/** A file-system error that means "cannot write here", not a bug in the step. */
function isWriteError(e: unknown): boolean {
  return ['ENOSPC', 'EDQUOT', 'EROFS'].includes(String((e as NodeJS.ErrnoException | undefined)?.code));
}

/** Removes temp copies that killed runs left beside `target` (their process is gone). */
async function removeStaleTemps(target: string): Promise<void> {
  const dir = path.dirname(target);
  const prefix = `${path.basename(target)}.tlpipe-tmp-`;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const pid = Number(name.slice(prefix.length));
    if (name.startsWith(prefix) && Number.isInteger(pid) && pid !== process.pid && !isAlive(pid)) {
      await fs.rm(path.join(dir, name), { force: true });
    }
  }
}

/** Resolves an output path and refuses one that leaves the project folder. */
export function insideProject(projectDir: string, p: string): string {
  const full = path.resolve(projectDir, p);
  const rel = path.relative(projectDir, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new StepFailure(`Output path "${p}" is outside the project folder ${projectDir}; outputs must stay inside it.`);
  }
  return full;
}
