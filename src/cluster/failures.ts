// The cluster's expected failures: conditions of the machines, the data or
// the services, each with a message that says what to do. A worker reports
// them against the job (and refuses the queue where it must); the run shows
// them as the stage's failure, never as a bug.
import { ExpectedFailure, type FailureReason } from '../failure.js';

/** This machine's copy of the data is not the run's: missing, unreadable, or other bytes. Never a skipped image. */
export class DataMismatch extends ExpectedFailure {
  readonly reason: FailureReason = 'data';
}

/** The model gives vectors of another width than the job was planned for. */
export class FeatureWidthMismatch extends ExpectedFailure {
  readonly reason: FailureReason = 'model';
}

/** Redis stayed unreachable past TLPIPE_QUEUE_TIMEOUT (a worker started with one). */
export class RedisUnavailable extends ExpectedFailure {
  readonly reason: FailureReason = 'environment';
}
