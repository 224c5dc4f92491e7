// The contract between the runner and a Step (the code a Stage uses).
// A step never touches the cache, the terminal or another stage's files: it
// reads its inputs and writes its outputs only through the context it is given,
// so a different executor (another machine, a cluster) can run it unchanged.

import type { Cluster } from '../cluster/coordinator.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type JsonSchema = { [key: string]: unknown };

export interface Step<P = any> {
  /** The name pipelines use in `uses:`, e.g. `exec` or `images.dataset`. */
  type: string;
  /** Bump when the step's results change for the same parameters: old artifacts stop matching. */
  version: number;
  description: string;
  /** JSON Schema (draft-07) for the stage's `with:` parameters; defaults are filled in. */
  paramsSchema: JsonSchema;
  /**
   * The artifacts this step consumes, by input name. A stage maps each name to
   * the stage that produces it (`inputs: {features: features}`). `kind` names
   * the artifact kind the input accepts (see src/artifacts/): analysis rejects
   * a stage wired to one of another kind. An input without a kind accepts any
   * artifact. `any: true` accepts any stage names (used for ordering, as with `exec`).
   */
  inputs?: { [name: string]: InputPort } | { any: true };
  /**
   * The artifact kind this step produces. A step that declares none produces
   * an untyped artifact: only inputs that accept any artifact take it.
   */
  produces?: string;
  /**
   * Rules between parameters that a JSON Schema cannot state (and rules
   * against what the upstream stages will produce), checked at analysis so
   * `tlpipe validate` reports them at their line before anything runs.
   */
  check?(params: P, inputs: { [name: string]: UpstreamPreview }): ParamProblem[];
  /**
   * What this stage's artifact is known to be from its parameters alone (for
   * its consumers' `check`), e.g. a dataset's `{hasValidationSplit: false}`.
   */
  preview?(params: P): Json;
  /**
   * What the result depends on besides parameters and input artifacts (content
   * hashes of files it reads, a model's hash...). Runs before the stage, also
   * for `status`; it goes into the stage's fingerprint.
   */
  dependencies?(params: P, ctx: PlanContext): Promise<Json>;
  /**
   * Paths the stage will read and write, for checks at validation, before any
   * work: a read path must exist, a written one must stay inside the project.
   * `param` points at the parameter under `with:` ("to", "outs/0").
   */
  paths?(params: P): { reads?: PathUse[]; writes?: PathUse[] };
  /**
   * The parameters as they enter the fingerprint, when some must not go in
   * verbatim: a path to data outside the project is keyed by its content (in
   * `dependencies`), not by where it is mounted. Default: all of them.
   */
  keyParams?(params: P, ctx: PlanContext): Json;
  run(ctx: StepContext, params: P, inputs: Inputs): Promise<StepResult>;
}

export interface PathUse {
  param: string;
  path: string;
  /** What it is, for the message: "dataset folder", "model file". */
  what: string;
}

export interface InputPort {
  description: string;
  /** The artifact kind (or kinds) accepted; none: any artifact. */
  kind?: string | readonly string[];
  optional?: boolean;
}

/**
 * A problem `check` finds, with the parameter it is about (a key of `with:`,
 * or a path below it, `augment/scale`): analysis reports it at that line, or
 * at the stage when the key is not written in the file.
 */
export interface ParamProblem {
  at?: string;
  message: string;
}

/** An input's producer as analysis knows it: its stage, the kind it declares, its `preview`. */
export interface UpstreamPreview {
  stage: string;
  kind?: string;
  preview?: Json;
}

export interface PlanContext {
  /** The project root: relative paths in the pipeline resolve against it. */
  projectDir: string;
  /** Resolves a path that the stage reads (anywhere on disk). */
  inputPath(p: string): string;
  /** Content hash of a file or, for a folder, of its sorted tree. Cached by size and mtime. */
  hashPath(p: string): Promise<string>;
  signal: AbortSignal;
}

export interface StepContext extends PlanContext {
  stage: string;
  runId: string;
  /** An empty folder: everything the step writes here becomes its artifact. */
  outDir: string;
  /** Scratch space, removed after the stage. */
  tmpDir: string;
  /**
   * Resolves a path the stage publishes to (e.g. a CSV). It must stay inside
   * the project; the runner copies the file there atomically after the stage.
   */
  outputPath(p: string): string;
  log(message: string): void;
  warn(message: string): void;
  /**
   * An expected failure to throw (`throw ctx.fail('...')`): the stage fails with
   * this message. Any other exception a step lets out is reported as a bug.
   */
  fail(message: string, options?: { cause?: unknown }): Error;
  /** Reports progress of long work; `total` may be unknown. */
  progress(done: number, total?: number, unit?: string): void;
  /**
   * A durable log of committed chunks of work. A killed run resumes from what
   * was appended. The default scope is the stage's fingerprint; a step may name
   * a wider scope (e.g. backbone + preprocessing) to share work across fingerprints.
   */
  chunks(scope?: string): ChunkLog;
  /** Set when the run may spread work over other machines (`run --queue`). */
  cluster?: Cluster;
}

export interface ChunkLog {
  /** The scope id, recorded with the artifact so garbage collection keeps it. */
  readonly id: string;
  /** Every committed chunk, oldest first. Corrupt ones are dropped with a warning. */
  readAll(): Promise<Buffer[]>;
  /** Atomically and durably appends one chunk. */
  append(data: Uint8Array): Promise<void>;
}

export interface Artifact {
  stage: string;
  fingerprint: string;
  value: Json;
  metrics: { [name: string]: Json };
  /** Absolute path of one of the artifact's files (verified, read-only). */
  file(name: string): string;
  files(): string[];
}

export type Inputs = { [name: string]: Artifact };

export interface StepResult {
  /** A small JSON summary kept in the artifact and the run record. */
  value?: Json;
  /** Metrics shown at the end of the run and in `--json`, by name. */
  metrics?: { [name: string]: Json };
  /** Files of outDir to publish outside the store, to paths from ctx.outputPath. */
  publish?: { file: string; to: string }[];
  /** Chunk scopes this artifact depends on (kept by gc). */
  chunkScopes?: string[];
  /**
   * Set when the stage had nothing to do (predictions for a dataset without
   * test images): one line saying why. Nothing is stored or published; the
   * stage reports `skipped` and the run still succeeds.
   */
  nothingToDo?: string;
  /**
   * The artifact names places on this machine (data outside the project), so it
   * is never shared through a remote cache: other machines compute their own.
   */
  machineLocal?: boolean;
}

export function defineStep<P>(step: Step<P>): Step<P> {
  return step;
}
