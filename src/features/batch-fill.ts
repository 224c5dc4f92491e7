// A batch buffer being filled by concurrent image loads, and the pool of such
// buffers (they come back from the inference worker and are reused).
import type { ImageLoader } from './extract.js';

/** One batch buffer being filled by concurrent loads. */
export class BatchFill<T> {
  readonly buffer: Float32Array;
  readonly #elements: number;
  readonly #items: T[] = [];
  readonly #ok: boolean[] = [];
  readonly #loads: Promise<void>[] = [];

  constructor(buffer: Float32Array, elements: number) {
    this.buffer = buffer;
    this.#elements = elements;
  }

  get count(): number {
    return this.#items.length;
  }

  start(item: T, load: ImageLoader<T>, signal: AbortSignal, settled: (item: T, err?: unknown) => void): void {
    const slot = this.#items.length;
    const offset = slot * this.#elements;
    this.#items.push(item);
    this.#ok.push(false);
    const run = async () => {
      const returned = await load(item, this.buffer, offset, signal);
      if (returned !== undefined) {
        if (!(returned instanceof Float32Array) || returned.length !== this.#elements) {
          throw new Error(
            `the loader returned ${describeValue(returned)}; expected a Float32Array of ${this.#elements} values`,
          );
        }
        this.buffer.set(returned, offset);
      }
    };
    this.#loads.push(
      run().then(
        () => {
          this.#ok[slot] = true;
          settled(item);
        },
        (err: unknown) => settled(item, err ?? new Error('load failed')),
      ),
    );
  }

  /** Waits for every load, then moves the loaded rows together at the front; returns their items. */
  async settled(): Promise<T[]> {
    await Promise.all(this.#loads);
    const rows: T[] = [];
    const e = this.#elements;
    this.#items.forEach((item, slot) => {
      if (!this.#ok[slot]) return;
      const row = rows.length;
      if (row !== slot) this.buffer.copyWithin(row * e, slot * e, (slot + 1) * e);
      rows.push(item);
    });
    return rows;
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

function describeValue(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as ArrayLike<unknown>).length} values`;
  return typeof v;
}
