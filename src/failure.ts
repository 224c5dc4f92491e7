// Expected failures: the input or the environment is wrong and the message
// says what to do. Libraries throw these (each a subclass naming its concept,
// with a `reason`); the runner shows them as the stage's failure. Anything else
// that escapes a step is a bug, reported as one with its stack.

/** What kind of thing the user has to fix. */
export type FailureReason = 'data' | 'model' | 'parameters' | 'environment' | 'command';

export abstract class ExpectedFailure extends Error {
  abstract readonly reason: FailureReason;
}

export const isExpectedFailure = (e: unknown): e is ExpectedFailure => e instanceof ExpectedFailure;
