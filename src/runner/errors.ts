// Expected failures, each with the exit code the CLI returns for it. Anything
// else that escapes is a bug and is reported as such (exit 70).
import { ExpectedFailure, type FailureReason } from '../failure.js';
import { type Diagnostic, formatDiagnostics } from './diagnostic.js';

export const ExitCode = {
  ok: 0,
  /** A stage failed. */
  runFailed: 1,
  /** The pipeline file is invalid. */
  invalidPipeline: 2,
  /** Bad command-line usage or a missing file. */
  usage: 64,
  /** The remote cache or the queue's Redis is needed and cannot be reached (EX_UNAVAILABLE). */
  unavailable: 69,
  /** An internal error: a bug in tlpipe or a step. */
  internal: 70,
  /** The cache folder or an output cannot be written. */
  cantWrite: 73,
  interrupted: 130,
} as const;

export class TlpipeError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class PipelineInvalid extends TlpipeError {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(formatDiagnostics(diagnostics), ExitCode.invalidPipeline);
  }
}

/** A service the command needs (the queue's Redis) stayed unreachable: exit 69 (EX_UNAVAILABLE). */
export class ServiceUnavailable extends TlpipeError {
  constructor(message: string) {
    super(message, ExitCode.unavailable);
  }
}

export class UsageError extends TlpipeError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

export class StoreError extends TlpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.cantWrite, options);
  }
}

/** Thrown by steps for failures the user can fix (bad data, a failing command). */
export class StepFailure extends ExpectedFailure {
  readonly reason: FailureReason;
  constructor(
    message: string,
    readonly details?: { exitCode?: number; stderrTail?: string },
    options: { reason?: FailureReason; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.reason = options.reason ?? 'data';
  }
}

export class Interrupted extends TlpipeError {
  constructor(message = 'Interrupted.') {
    super(message, ExitCode.interrupted);
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Explains file-system errors in words a user can act on. */
export function describeFsError(e: unknown, what: string): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
      return `No space left on the device while ${what}. Free some space (or point --cache-dir at a larger disk) and run again; nothing partial was kept.`;
    case 'EDQUOT':
      return `Disk quota exceeded while ${what}. Free some space and run again; nothing partial was kept.`;
    case 'EACCES':
    case 'EPERM':
      return `Permission denied while ${what}. Make the folder writable or choose another with --cache-dir / TLPIPE_CACHE_DIR.`;
    case 'EROFS':
      return `The file system is read-only while ${what}. Choose a writable folder with --cache-dir / TLPIPE_CACHE_DIR.`;
    case 'ENOTDIR':
    case 'EEXIST':
      return `Cannot use ${(e as NodeJS.ErrnoException).path ?? 'the path'} while ${what}: a file stands where a folder is needed. Choose another folder with --cache-dir or TLPIPE_CACHE_DIR.`;
    default:
      return `Failed while ${what}: ${errorMessage(e)}`;
  }
}
