// What the executor tells the world while it works. Reporters (terminal,
// plain lines, JSON) only listen to these; they never reach into the runner.
import type { StageFailure, StageStatus, Transfer } from './outcome.js';
import type { Json } from './step.js';

export type RunEvent =
  | { type: 'plan'; stages: { name: string; state: 'cached' | 'run' | 'skip'; reason: string; fingerprint: string }[] }
  | { type: 'stage-start'; stage: string; reason: string }
  | { type: 'stage-waiting'; stage: string; message: string }
  | { type: 'stage-progress'; stage: string; done: number; total?: number; unit?: string }
  | { type: 'stage-log'; stage: string; level: 'info' | 'warn'; message: string }
  | {
      type: 'stage-end';
      stage: string;
      status: StageStatus;
      durationMs: number;
      fingerprint: string;
      metrics?: { [name: string]: Json };
      error?: string;
      failure?: StageFailure;
      /** Why a stage was skipped, when it had nothing to do. */
      note?: string;
      /** For `pulled`: what came from the remote. */
      transfer?: Transfer;
    }
  | { type: 'warning'; message: string };

export type EventSink = (event: RunEvent) => void;
