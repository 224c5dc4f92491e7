// Small concurrency tools for the feature pipeline: a counting semaphore whose
// waits can be cancelled, a helper that turns an AbortSignal into a rejection,
// the pool of reused batch buffers and the queue that delivers batches in
// order. Kept dependency-free so the extractor stays easy to reason about.

/** The error a cancelled wait rejects with: the signal's own reason. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/** Rejects when `signal` aborts; never resolves otherwise. Call `dispose` to drop the listener. */
export function rejectOnAbort(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortReason(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // A race loser must not surface as an unhandled rejection.
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** Resolves with `promise`, or rejects as soon as `signal` aborts. */
export async function raceAbort<V>(promise: Promise<V>, signal: AbortSignal): Promise<V> {
  if (signal.aborted) {
    // Nobody will await `promise` now: its later rejection must not crash the process.
    promise.catch(() => {});
    throw abortReason(signal);
  }
  const abort = rejectOnAbort(signal);
  try {
    return await Promise.race([promise, abort.promise]);
  } finally {
    abort.dispose();
  }
}

/** Counting semaphore; `acquire` waits in FIFO order and gives up when the signal aborts. */
export class Semaphore {
  #available: number;
  readonly #waiters: Array<{ grant: () => void; cancel: (err: unknown) => void }> = [];

  constructor(permits: number) {
    this.#available = permits;
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    if (this.#available > 0 && this.#waiters.length === 0) {
      this.#available--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        cancel: reject,
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(abortReason(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next.grant();
    else this.#available++;
  }
}

/** Batch buffers come back from the worker after each run and are reused. */
export class BufferPool {
  readonly #free: Float32Array[] = [];
  constructor(readonly length: number) {}

  take(): Float32Array {
    return this.#free.pop() ?? new Float32Array(this.length);
  }

  give(buffer: Float32Array): void {
    if (buffer.length === this.length) this.#free.push(buffer);
  }
}

/** Promises delivered in the order they were pushed, to one consumer. */
export class OrderedQueue<V> {
  readonly #items: Promise<V>[] = [];
  #ended = false;
  #failure: { error: unknown } | undefined;
  #wake: (() => void) | undefined;

  push(p: Promise<V>): void {
    p.catch(() => {}); // surfaced when consumed, in order
    this.#items.push(p);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(error: unknown): void {
    this.#failure ??= { error };
    this.#notify();
  }

  async shift(): Promise<IteratorResult<V, undefined>> {
    for (;;) {
      const head = this.#items.shift();
      if (head) return { done: false, value: await head };
      if (this.#failure) throw this.#failure.error;
      if (this.#ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
