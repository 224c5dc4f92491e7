// What became of a stage: its outcome, as the run record keeps it, and its
// failure as a value. Expected failures carry the reason the user has to act
// on; a bug (an exception no step or library meant) carries its stack, shown
// only under --verbose. Reporters turn failures into text through
// describeFailure, one exhaustive switch.
import type { FailureReason } from '../failure.js';
import type { Json } from './step.js';

export type StageStatus = 'ran' | 'cached' | 'pulled' | 'failed' | 'skipped';

/** Bytes moved from or to the remote cache for one stage, and how long it took. */
export interface Transfer {
  bytes: number;
  ms: number;
}

export type StageFailure =
  /** A step or a library said what is wrong (bad data, a model, a parameter, CUDA, a command). */
  | { reason: FailureReason; message: string; exitCode?: number; stderrTail?: string }
  /** The cache or an output could not be written (disk full, permissions). */
  | { reason: 'cant-write'; message: string }
  /** An input's artifact is not in the cache (--only). */
  | { reason: 'upstream-missing'; message: string }
  /** An input's artifact is only in a remote cache that cannot be reached (exit 69). */
  | { reason: 'remote-unreachable'; message: string }
  | { reason: 'interrupted'; message: string }
  /** A service the stage needs (the queue's Redis) stayed unreachable. */
  | { reason: 'unavailable'; message: string }
  /** An unexpected exception: a bug in the step or in tlpipe, with the stage it happened in. */
  | { reason: 'bug'; message: string; stack: string };

export interface StageOutcome {
  name: string;
  uses: string;
  /** The artifact kind its step produces (absent for untyped user steps, and in records written before kinds). */
  kind?: string;
  status: StageStatus;
  fingerprint: string;
  reason: string;
  durationMs: number;
  value?: Json;
  metrics: { [name: string]: Json };
  /** Files published outside the store, relative to the project. */
  outputs: string[];
  /** The failure in words (describeFailure without --verbose). */
  error?: string;
  failure?: StageFailure;
  /** Why the stage was skipped when it had nothing to do (StepResult.nothingToDo). */
  note?: string;
  /** 73 when the stage failed because the cache or an output could not be written (disk full...). */
  exitCode?: number;
  /** `pulled`: what came from the remote cache. */
  transfer?: Transfer;
  /** What this run pushed of the stage's artifact to the remote cache. */
  pushed?: Transfer;
}

/** The failure in words; a bug's stack only when `verbose`. */
export function describeFailure(f: StageFailure, verbose = false): string {
  switch (f.reason) {
    case 'data':
    case 'model':
    case 'parameters':
    case 'environment':
    case 'command':
    case 'cant-write':
    case 'upstream-missing':
    case 'remote-unreachable':
    case 'interrupted':
    case 'unavailable':
      return f.message;
    case 'bug':
      return verbose ? `${f.message}\n${f.stack}` : `${f.message} (a bug in the step or in tlpipe: --verbose shows where)`;
    default: {
      const unknown: never = f;
      return String((unknown as { message?: unknown }).message);
    }
  }
}

/** The exit code a failure gives the CLI beyond "a stage failed". */
export function failureExitCode(f: StageFailure): number | undefined {
  switch (f.reason) {
    case 'cant-write':
      return 73;
    case 'remote-unreachable':
    case 'unavailable':
      return 69;
    case 'data':
    case 'model':
    case 'parameters':
    case 'environment':
    case 'command':
    case 'upstream-missing':
    case 'interrupted':
    case 'bug':
      return undefined;
    default: {
      const unknown: never = f;
      return unknown;
    }
  }
}

/** An unexpected exception in a stage, wrapped once at the step boundary with the stage's name; the cause is kept. */
export class StageBug extends Error {
  override name = 'StageBug';
  constructor(
    readonly stage: string,
    readonly uses: string,
    cause: unknown,
  ) {
    super(`step "${uses}" failed unexpectedly: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }

  failure(): StageFailure {
    const cause = this.cause;
    const stack = cause instanceof Error && cause.stack ? cause.stack : String(cause);
    return { reason: 'bug', message: this.message, stack: `in stage "${this.stage}": ${stack}` };
  }
}
