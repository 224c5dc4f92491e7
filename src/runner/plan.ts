// Planning: each stage's fingerprint, computed before anything runs, and
// whether it is fresh (cached) or must run, with the reason in words.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Pipeline, Stage } from './analyze.js';
import { didYouMean } from './diagnostic.js';
import { errorMessage, UsageError } from './errors.js';
import { FINGERPRINT_FORMAT, type FingerprintRecord, describeChanges, fingerprintOf, sha256 } from './fingerprint.js';
import { hideSecrets } from './secrets.js';
import type { PathHasher } from './path-hasher.js';
import type { PlanContext, Json } from './step.js';
import type { ArtifactStore } from './store.js';

export type PlannedState = 'cached' | 'run' | 'skip';

export interface PlannedStage {
  stage: Stage;
  record: FingerprintRecord;
  fingerprint: string;
  state: PlannedState;
  /** Run even if cached (--force, --from). */
  forced: boolean;
  /** Why the stage runs, or that it is cached. */
  reason: string;
}

export interface Plan {
  pipeline: Pipeline;
  stages: PlannedStage[];
}

export interface PlanOptions {
  /** true forces every stage; a list forces those stages. */
  force?: boolean | string[];
  /** Rerun this stage and everything downstream of it. */
  from?: string;
  /** Run only this stage; its inputs must already be cached. */
  only?: string;
}

export class PlanError extends UsageError {}

export function planContext(pipeline: Pipeline, hasher: PathHasher, signal: AbortSignal): PlanContext {
  return {
    projectDir: pipeline.projectDir,
    inputPath: (p: string) => path.resolve(pipeline.projectDir, p),
    hashPath: (p: string) => hasher.hashPath(path.resolve(pipeline.projectDir, p)),
    signal,
  };
}

/** The fingerprints each pipeline's stages had in its last run, for "what changed" reasons. */
export function lastFingerprintsFile(store: ArtifactStore, pipelineFile: string): string {
  return path.join(store.root, 'state', `last-${sha256(path.resolve(pipelineFile)).slice(0, 16)}.json`);
}

export async function makePlan(
  pipeline: Pipeline,
  store: ArtifactStore,
  hasher: PathHasher,
  options: PlanOptions,
  signal: AbortSignal,
): Promise<Plan> {
  const names = pipeline.stages.map((s) => s.name);
  for (const [flag, stage] of [
    ['--from', options.from],
    ['--only', options.only],
    ...(Array.isArray(options.force) ? options.force.map((f) => ['--force', f]) : []),
  ] as [string, string | undefined][]) {
    if (stage !== undefined && !names.includes(stage)) {
      throw new PlanError(`${flag} ${stage}: no such stage in ${path.basename(pipeline.file)}.${didYouMean(stage, names)} Stages: ${names.join(', ')}.`);
    }
  }
  const previous = await readLastFingerprints(lastFingerprintsFile(store, pipeline.file));
  const ctx = planContext(pipeline, hasher, signal);
  const planned = new Map<string, PlannedStage>();
  const downstreamOfFrom = new Set<string>();

  for (const stage of pipeline.stages) {
    let dependencies: Json = null;
    if (stage.step.dependencies) {
      try {
        dependencies = await stage.step.dependencies(stage.params, ctx);
      } catch (e) {
        throw new PlanError(`Stage "${stage.name}" (${stage.uses}): ${errorMessage(e)}`);
      }
    }
    const inputs: { [k: string]: string } = {};
    for (const [input, producer] of Object.entries(stage.inputs)) inputs[input] = planned.get(producer)!.fingerprint;
    const record: FingerprintRecord = {
      format: FINGERPRINT_FORMAT,
      step: { type: stage.step.type, version: stage.step.version },
      params: hideSecrets(stage.step.keyParams ? stage.step.keyParams(stage.params, ctx) : stage.params),
      inputs,
      dependencies,
    };
    const fingerprint = fingerprintOf(record);
    const upstreamRuns = Object.values(stage.inputs).filter((p) => planned.get(p)!.state === 'run');
    if (options.from === stage.name || Object.values(stage.inputs).some((p) => downstreamOfFrom.has(p))) {
      downstreamOfFrom.add(stage.name);
    }
    let state: PlannedState;
    let reason: string;
    const forcedByFlag = options.force === true || (Array.isArray(options.force) && options.force.includes(stage.name));
    if (options.only !== undefined && options.only !== stage.name) {
      state = 'skip';
      reason = `not selected (--only ${options.only})`;
    } else if (forcedByFlag) {
      state = 'run';
      reason = 'forced (--force)';
    } else if (downstreamOfFrom.has(stage.name)) {
      state = 'run';
      reason = options.from === stage.name ? 'forced (--from)' : `downstream of --from ${options.from}`;
    } else {
      const found = await store.lookup(fingerprint, 'quick');
      if (found.found) {
        state = 'cached';
        reason = `cached (${fingerprint.slice(0, 12)})`;
      } else {
        state = 'run';
        reason = await explainMiss(store, previous[stage.name], record, found.reason, upstreamRuns);
      }
    }
    const forced = state === 'run' && (forcedByFlag || downstreamOfFrom.has(stage.name));
    planned.set(stage.name, { stage, record, fingerprint, state, forced, reason });
  }
  return { pipeline, stages: [...planned.values()] };
}

async function explainMiss(
  store: ArtifactStore,
  previousFingerprint: string | undefined,
  record: FingerprintRecord,
  missReason: string,
  upstreamRuns: string[],
): Promise<string> {
  if (previousFingerprint) {
    const before = await store.readEntry(previousFingerprint);
    if (before) {
      const changes = describeChanges(before.record, record).filter((c) => !c.startsWith('input "'));
      if (changes.length) return `changed: ${changes.join('; ')}`;
    }
  }
  if (upstreamRuns.length) return `input from ${upstreamRuns.map((s) => `"${s}"`).join(', ')} changes`;
  return missReason;
}

async function readLastFingerprints(file: string): Promise<Record<string, string>> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}
