// Main-thread side of the inference workers: starts them, hands each batch to
// the least busy one (buffers transferred, not copied) and shuts them down.
import { Worker } from 'node:worker_threads';
import { CudaUnavailableError, type SessionSettings } from '../onnx/runtime.js';
import type { InitRequest, ModelInfo, RunRequest, WorkerReply } from './worker-protocol.js';

export interface InferenceResult {
  /** The input buffer, back from the worker, free for the next batch. */
  buffer: ArrayBuffer;
  features: Float32Array;
  /** Output shape, batch dimension included. */
  shape: number[];
}

interface Pending {
  resolve: (r: InferenceResult) => void;
  reject: (e: unknown) => void;
}

class InferenceWorker {
  readonly ready: Promise<ModelInfo>;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #failure: Error | undefined;
  /** Runs the worker has not answered yet (they go on in native code even when their promise was rejected). */
  #inFlight = 0;
  #drained: (() => void) | undefined;

  constructor(model: string | Uint8Array, modelLabel: string, settings: SessionSettings, chooseSpinning?: InitRequest['chooseSpinning']) {
    this.#worker = new Worker(new URL('./inference-worker.js', import.meta.url));
    let readyResolve!: (info: ModelInfo) => void;
    let readyReject!: (err: unknown) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => {}); // observed by the pool; avoid an unhandled rejection meanwhile

    this.#worker.on('message', (msg: WorkerReply) => {
      switch (msg.kind) {
        case 'ready':
          readyResolve(msg.info);
          break;
        case 'init-failed': {
          const err = msg.cuda
            ? new CudaUnavailableError(`the model ${modelLabel}`, new Error(msg.message))
            : new Error(`Could not load the model ${modelLabel} into onnxruntime: ${msg.message}`);
          this.#fail(err);
          readyReject(err);
          break;
        }
        case 'result':
          this.#answered();
          this.#settle(msg.id)?.resolve({ buffer: msg.buffer, features: msg.features, shape: msg.shape });
          break;
        case 'run-failed':
          this.#answered();
          this.#settle(msg.id)?.reject(new Error(`Inference failed on ${modelLabel}: ${msg.message}`));
          break;
      }
    });
    this.#worker.on('error', (err) => {
      const failure = new Error(`The inference worker for ${modelLabel} crashed: ${err.message}`, { cause: err });
      this.#fail(failure);
      readyReject(failure);
    });
    this.#worker.on('exit', (code) => {
      this.#inFlight = 0;
      this.#drained?.();
      const failure = new Error(`The inference worker for ${modelLabel} stopped (exit code ${code})`);
      this.#fail(failure);
      readyReject(failure);
    });
    const init: InitRequest = { kind: 'init', model, modelLabel, settings, ...(chooseSpinning ? { chooseSpinning } : {}) };
    this.#worker.postMessage(init);
  }

  get busy(): number {
    return this.#pending.size;
  }

  run(req: RunRequest): Promise<InferenceResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#pending.set(req.id, { resolve, reject });
      this.#inFlight++;
      this.#worker.postMessage(req, [req.buffer]);
    });
  }

  async terminate(reason: Error): Promise<void> {
    this.#fail(reason);
    // Stopping a worker inside session.run aborts the whole process (onnxruntime's
    // completion calls into the dead thread): let the runs in flight end first.
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
        setTimeout(resolve, 30_000).unref();
      });
    }
    await this.#worker.terminate();
  }

  #answered(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (this.#inFlight === 0) this.#drained?.();
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    this.#pending.delete(id);
    return p;
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const p of this.#pending.values()) p.reject(this.#failure);
    this.#pending.clear();
  }
}

export interface PoolOptions {
  model: string | Uint8Array;
  modelLabel: string;
  settings: SessionSettings;
  workers: number;
  /** Each worker chooses spinning from a timed run, instead of settings.spinning (see threads.ts). */
  chooseSpinning?: InitRequest['chooseSpinning'];
}

export class InferencePool {
  /** Resolves with the model's inputs and outputs once every worker has its session. */
  readonly ready: Promise<ModelInfo>;
  readonly #workers: InferenceWorker[];
  #nextId = 0;
  #closed = false;

  constructor(opts: PoolOptions) {
    this.#workers = Array.from(
      { length: Math.max(1, opts.workers) },
      () => new InferenceWorker(opts.model, opts.modelLabel, opts.settings, opts.chooseSpinning),
    );
    this.ready = Promise.all(this.#workers.map((w) => w.ready)).then((infos) => infos[0]!);
    this.ready.catch(() => {});
  }

  /** Runs one batch on the least busy worker. `buffer` is transferred: it is unusable here until returned. */
  run(buffer: ArrayBuffer, shape: number[], inputName: string, outputName: string): Promise<InferenceResult> {
    const worker = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    return worker.run({ kind: 'run', id: this.#nextId++, inputName, outputName, buffer, shape });
  }

  /** Stops every worker; pending runs reject. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const reason = new Error('The inference pool was closed');
    await Promise.all(this.#workers.map((w) => w.terminate(reason)));
  }
}
