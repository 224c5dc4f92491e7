// A sweep member as a queue job: the stages one combination of a sweep does
// not share with the others (its training and evaluation), as the run planned
// them. The job carries each stage's fingerprint record, so a worker executes
// exactly what the run planned and never plans itself: it checks that its own
// step of that type has the record's version and that the record hashes to
// the fingerprint, takes the inputs the record names from the remote, runs
// the step, and pushes the artifact under that fingerprint. The job id is a
// hash of the fingerprints, so the same member is one job however often a
// run adds it, and a member computed twice gives one remote entry.
import { type Job, UnrecoverableError } from 'bullmq';
import type { RemoteCache } from '../remote/cache.js';
import { errorMessage, StepFailure } from '../runner/errors.js';
import { canonicalJson, type FingerprintRecord, fingerprintOf, sha256 } from '../runner/fingerprint.js';
import type { Plan } from '../runner/plan.js';
import type { StepRegistry } from '../runner/registry.js';
import type { Artifact, Json, StepContext } from '../runner/step.js';
import type { ArtifactStore } from '../runner/store.js';
import { ExpectedFailure, type FailureReason } from '../failure.js';

export const MEMBER_JOB_FORMAT = 1;
export const MEMBERS_QUEUE = 'sweep-members';

/** Steps that read only their input artifacts (no project files, nothing published): safe on any machine. */
export const MEMBER_STEPS: ReadonlySet<string> = new Set(['head.train', 'head.evaluate']);

export interface MemberStage {
  name: string;
  uses: string;
  params: Json;
  record: FingerprintRecord;
  fingerprint: string;
}

export interface MemberJobData {
  format: number;
  /** The combination, for messages: `lr=0.01 epochs=3`. */
  label: string;
  /** In dependency order. */
  stages: MemberStage[];
}

export const memberJobId = (data: Pick<MemberJobData, 'stages'>) =>
  `sm-${sha256(canonicalJson({ format: MEMBER_JOB_FORMAT, stages: data.stages.map((s) => s.fingerprint) }))}`;

/**
 * The member of a planned combination: its stages to run whose steps are
 * member steps, or undefined when it has none. Their inputs are either other
 * stages of the member or artifacts the remote must hold (checked by the caller).
 */
export function memberOf(plan: Plan, label: string): MemberJobData | undefined {
  const stages = plan.stages
    .filter((s) => s.state === 'run' && MEMBER_STEPS.has(s.stage.uses))
    .map((s): MemberStage => ({ name: s.stage.name, uses: s.stage.uses, params: s.stage.params, record: s.record, fingerprint: s.fingerprint }));
  return stages.length ? { format: MEMBER_JOB_FORMAT, label, stages } : undefined;
}

/** The fingerprints a member needs from outside itself. */
export function externalInputs(data: MemberJobData): string[] {
  const own = new Set(data.stages.map((s) => s.fingerprint));
  return [...new Set(data.stages.flatMap((s) => Object.values(s.record.inputs)).filter((fp) => !own.has(fp)))];
}

/** This machine must not run the member: another tlpipe (step versions), or a job that does not hash to what it claims. */
export class MemberRefused extends ExpectedFailure {
  readonly reason: FailureReason = 'environment';
}

/** An input the member needs is not in the remote (yet): the job is retried later. */
export class MemberInputMissing extends ExpectedFailure {
  readonly reason: FailureReason = 'environment';
}

/** Why this machine must not run the member, or undefined. */
export function memberMismatch(data: MemberJobData, steps: StepRegistry): string | undefined {
  if (data.format !== MEMBER_JOB_FORMAT) return `the job has format ${data.format}, this tlpipe reads ${MEMBER_JOB_FORMAT}`;
  for (const s of data.stages) {
    const step = steps.steps.get(s.uses);
    if (!step || !MEMBER_STEPS.has(s.uses)) return `stage "${s.name}" uses ${s.uses}, which this worker does not run for others`;
    if (s.record.step.type !== s.uses || s.record.step.version !== step.version) {
      return `stage "${s.name}" needs ${s.uses} version ${s.record.step.version}, this tlpipe has version ${step.version} (run the same tlpipe on every machine)`;
    }
    if (fingerprintOf(s.record) !== s.fingerprint) return `stage "${s.name}"'s record does not hash to its fingerprint ${s.fingerprint.slice(0, 12)}`;
  }
  return undefined;
}

export interface MemberOutcome {
  /** Stages this call computed and pushed. */
  ran: string[];
  /** Stages whose artifacts were already in the store or the remote. */
  present: string[];
  ms: number;
}

/**
 * Computes a member's stages into `store` and pushes each to `remote`.
 * Stages already there are taken as they are.
 */
export async function computeMember(
  data: MemberJobData,
  options: { store: ArtifactStore; remote: RemoteCache; steps: StepRegistry; worker: string; signal: AbortSignal; log(message: string): void },
): Promise<MemberOutcome> {
  const started = Date.now();
  const { store, remote } = options;
  const problem = memberMismatch(data, options.steps);
  if (problem) throw new MemberRefused(problem);
  const outcome: MemberOutcome = { ran: [], present: [], ms: 0 };
  const artifact = async (fingerprint: string): Promise<Artifact | undefined> => {
    let found = await store.lookup(fingerprint, 'full');
    if (!found.found && (await remote.pull(fingerprint)).pulled) found = await store.lookup(fingerprint, 'quick');
    return found.found ? found.artifact : undefined;
  };
  for (const s of data.stages) {
    options.signal.throwIfAborted();
    const here = await store.lookup(s.fingerprint, 'full');
    if (here.found || (await remote.has(s.fingerprint))) {
      if (here.found) await mustPush(remote, await remote.push(here.entry), s);
      outcome.present.push(s.name);
      continue;
    }
    const inputs: { [name: string]: Artifact } = {};
    for (const [input, fingerprint] of Object.entries(s.record.inputs)) {
      const a = await artifact(fingerprint);
      if (!a) throw new MemberInputMissing(`the input "${input}" of stage "${s.name}" (${fingerprint.slice(0, 12)}) is not in the remote ${remote.name} yet`);
      inputs[input] = a;
    }
    const step = options.steps.steps.get(s.uses)!;
    const outDir = await store.scratch(`${s.name}-out`);
    const tmpDir = await store.scratch(`${s.name}-tmp`);
    const stageStarted = Date.now();
    try {
      const elsewhere = (what: string) => () => {
        throw new MemberRefused(`stage "${s.name}" asked for ${what}, which a sweep member computed on another machine cannot give`);
      };
      const ctx: StepContext = {
        projectDir: tmpDir,
        inputPath: elsewhere('a project file'),
        hashPath: elsewhere('a project file'),
        signal: options.signal,
        stage: s.name,
        runId: `${options.worker}-${data.label}`,
        outDir,
        tmpDir,
        outputPath: elsewhere('a published output'),
        log: (m) => options.log(`${s.name}: ${m}`),
        warn: (m) => options.log(`${s.name}: warning: ${m}`),
        fail: (message, failOptions) => new StepFailure(message, undefined, { cause: failOptions?.cause }),
        progress: () => undefined,
        chunks: (scope?: string) => store.chunkLog(scope ?? s.fingerprint),
      };
      const result = await step.run(ctx, s.params, inputs);
      if (result.nothingToDo !== undefined || result.publish?.length || result.machineLocal) {
        throw new MemberRefused(`stage "${s.name}" gave a result only its own run can keep (nothing to do, published files or machine-local paths)`);
      }
      const entry = await store.commit(outDir, {
        fingerprint: s.fingerprint,
        record: s.record,
        stage: s.name,
        createdAt: new Date().toISOString(),
        durationMs: Date.now() - stageStarted,
        value: result.value ?? null,
        metrics: result.metrics ?? {},
        publish: [],
        chunkScopes: result.chunkScopes ?? [],
      });
      await mustPush(remote, await remote.push(entry), s);
      outcome.ran.push(s.name);
    } finally {
      const { rm } = await import('node:fs/promises');
      await rm(outDir, { recursive: true, force: true });
      await rm(tmpDir, { recursive: true, force: true });
    }
  }
  outcome.ms = Date.now() - started;
  return outcome;
}

async function mustPush(remote: RemoteCache, r: { pushed: boolean; reason?: string }, s: MemberStage): Promise<void> {
  if (r.pushed || r.reason === 'already in the remote') return;
  throw new MemberInputMissing(`the artifact of stage "${s.name}" could not be put in the remote ${remote.name} (${r.reason ?? 'unknown'}); the job is tried again`);
}

export interface MemberProcessorOptions {
  worker: string;
  store: ArtifactStore;
  /** A fresh remote cache per job: one that was unreachable once must not stay given up for the worker's lifetime. */
  openRemote(): RemoteCache;
  steps: StepRegistry;
  stopping: AbortSignal;
  say(line: string): void;
  onEnd?(job: Job<MemberJobData>, outcome: MemberOutcome | { error: string }): void;
}

/** The BullMQ processor of member jobs, shared by `tlpipe worker` and the run's own share. */
export function memberProcessor(options: MemberProcessorOptions) {
  return async (job: Job<MemberJobData>, _token?: string, cancelled?: AbortSignal): Promise<MemberOutcome> => {
    const remote = options.openRemote();
    const short = job.id!.slice(0, 15);
    options.say(`job ${short}… (sweep member ${job.data.label}): started, ${job.data.stages.map((s) => s.name).join(', ')}`);
    try {
      const outcome = await computeMember(job.data, {
        store: options.store,
        remote,
        steps: options.steps,
        worker: options.worker,
        signal: AbortSignal.any([options.stopping, ...(cancelled ? [cancelled] : [])]),
        log: (m) => options.say(`job ${short}…: ${m}`),
      });
      options.say(`job ${short}… (sweep member ${job.data.label}): ${outcome.ran.length ? `computed ${outcome.ran.join(', ')}` : 'already in the remote'} in ${(outcome.ms / 1000).toFixed(1)} s`);
      options.onEnd?.(job, outcome);
      return outcome;
    } catch (e) {
      options.say(`job ${short}… (sweep member ${job.data.label}): ${errorMessage(e)}`);
      options.onEnd?.(job, { error: errorMessage(e) });
      // A member this machine must not run fails at once (the run computes it); anything else is retried.
      if (e instanceof MemberRefused) throw new UnrecoverableError(`worker ${options.worker}: ${e.message}`);
      throw e;
    } finally {
      remote.close();
    }
  };
}
