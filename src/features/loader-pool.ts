// Main-thread side of the loader workers: sends each item to the least busy
// worker and copies the tensor it returns into the batch buffer (a memcpy;
// the decoding and resizing happened off this thread). Spent tensor buffers
// go back to their worker for reuse.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LoaderInit, LoaderModule, LoaderReply, LoadRequest, SerializedError } from './loader-protocol.js';

export type { LoaderModule };

interface Pending {
  target: Float32Array;
  offset: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deserialize(e: SerializedError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.code !== undefined) (err as Error & { code?: string }).code = e.code;
  return err;
}

export function loaderModuleUrl(url: string | URL): string {
  if (url instanceof URL) return url.href;
  return path.isAbsolute(url) ? pathToFileURL(url).href : url;
}

class LoaderWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #spares: ArrayBuffer[] = [];
  #failure: Error | undefined;

  constructor(init: LoaderInit, label: string, onFatal: (err: Error) => void) {
    this.#worker = new Worker(new URL('./loader-worker.js', import.meta.url));
    this.#worker.on('message', (msg: LoaderReply) => {
      if (msg.kind === 'init-failed') {
        const err = new Error(`Could not start the image loader ${label}: ${msg.error.message}`);
        this.#fail(err);
        onFatal(err);
        return;
      }
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (!p) return;
      if (msg.kind === 'loaded') {
        p.target.set(new Float32Array(msg.tensor), p.offset);
        this.#spares.push(msg.tensor);
        p.resolve();
      } else {
        p.reject(deserialize(msg.error));
      }
    });
    this.#worker.on('error', (err) => {
      const failure = new Error(`The image loader worker (${label}) crashed: ${err.message}`, { cause: err });
      this.#fail(failure);
      onFatal(failure);
    });
    this.#worker.on('exit', (code) => {
      const failure = new Error(`The image loader worker (${label}) stopped (exit code ${code})`);
      if (!this.#failure) onFatal(failure);
      this.#fail(failure);
    });
    this.#worker.postMessage(init);
  }

  get busy(): number {
    return this.#pending.size;
  }

  load(id: number, item: unknown, target: Float32Array, offset: number): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { target, offset, resolve, reject });
      const spare = this.#spares.pop();
      const req: LoadRequest = { kind: 'load', id, item, ...(spare ? { spare } : {}) };
      try {
        this.#worker.postMessage(req, spare ? [spare] : []);
      } catch (err) {
        // The item could not be cloned (e.g. a function): that image fails, not the run.
        this.#pending.delete(id);
        reject(new Error(`cannot send this item to a loader worker: ${(err as Error).message}`));
      }
    });
  }

  async terminate(reason: Error): Promise<void> {
    this.#fail(reason);
    await this.#worker.terminate();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const p of this.#pending.values()) p.reject(this.#failure);
    this.#pending.clear();
  }
}

export interface LoaderPoolOptions {
  module: LoaderModule;
  threads: number;
  /** Floats per image. */
  elements: number;
  /** A worker that cannot start or crashes ends the whole run, not just one image. */
  onFatal: (err: Error) => void;
}

export class LoaderPool {
  readonly #workers: LoaderWorker[];
  #nextId = 0;
  #closed = false;

  constructor(opts: LoaderPoolOptions) {
    const url = loaderModuleUrl(opts.module.url);
    const init: LoaderInit = {
      kind: 'init',
      url,
      exportName: opts.module.exportName ?? 'createLoader',
      options: opts.module.options,
      elements: opts.elements,
    };
    let fatal = false;
    const onFatal = (err: Error) => {
      if (fatal || this.#closed) return;
      fatal = true;
      opts.onFatal(err);
    };
    this.#workers = Array.from({ length: Math.max(1, opts.threads) }, () => new LoaderWorker(init, `"${url}"`, onFatal));
  }

  /** Loads one image into `target` at `offset`; rejects with the loader's own error if that image fails. */
  load(item: unknown, target: Float32Array, offset: number): Promise<void> {
    const worker = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    return worker.load(this.#nextId++, item, target, offset);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const reason = new Error('The image loader pool was closed');
    await Promise.all(this.#workers.map((w) => w.terminate(reason)));
  }
}
