// Worker thread that owns one onnxruntime session. session.run is synchronous
// native work for a whole batch; running it here keeps the main thread free to
// schedule image decoding for the next batch.
import { stat } from 'node:fs/promises';
import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { createSession, CudaUnavailableError } from '../onnx/runtime.js';
import { inferenceDominates, likelyInferenceBound, machineBusy } from './threads.js';
import type { InferenceCost, InitRequest, ModelInfo, RunRequest, TensorInfo, WorkerReply, WorkerRequest } from './worker-protocol.js';

if (!parentPort) throw new Error('inference-worker.js must be started as a worker thread');
const port = parentPort;
let session: ort.InferenceSession | undefined;

const reply = (message: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

function describe(values: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return values.map((v) =>
    v.isTensor ? { name: v.name, type: v.type, shape: [...v.shape] } : { name: v.name, type: undefined, shape: [] },
  );
}

/**
 * CPU milliseconds per image of one run on a made-up image, after one untimed
 * run (the first allocates). The smaller of the process's CPU time and wall
 * time × threads: other processes inflate the one, other threads of this
 * process (decoders started early) the other. Undefined when the input's
 * image dimensions are not fixed, or the run fails (the real batch reports it).
 */
async function probeCpuMsPerImage(s: ort.InferenceSession, threads: number): Promise<number | undefined> {
  const inputs = s.inputMetadata;
  const input = inputs.length === 1 ? inputs[0] : undefined;
  if (!input?.isTensor || input.type !== 'float32') return undefined;
  const [batchDim, ...rest] = input.shape;
  if (!rest.length || !rest.every((d) => typeof d === 'number' && d > 0)) return undefined;
  const rows = typeof batchDim === 'number' && batchDim > 0 ? batchDim : 1;
  const dims = [rows, ...(rest as number[])];
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i); // about the range of normalised pixels
  const feeds = { [input.name]: new ort.Tensor('float32', data, dims) };
  try {
    await s.run(feeds);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await s.run(feeds);
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return Math.min((used.user + used.system) / 1e3, wallMs * threads) / rows;
  } catch {
    return undefined;
  }
}

/**
 * A session with spinning chosen from its own cost: created with a first
 * guess from the model's size (threads.ts), timed, and created again only
 * when the timed run contradicts the guess, so a large model is normally
 * read and optimised once.
 */
async function chooseSpinning(req: InitRequest, choice: NonNullable<InitRequest['chooseSpinning']>): Promise<InferenceCost> {
  const what = `the model ${req.modelLabel}`;
  const busy = machineBusy(choice.loadAverage);
  const bytes = typeof req.model === 'string' ? (await stat(req.model).catch(() => undefined))?.size : req.model.byteLength;
  const guess = likelyInferenceBound(bytes) && !busy;
  session = await createSession(req.model, { ...req.settings, spinning: guess }, what);
  const cpuMsPerImage = await probeCpuMsPerImage(session, req.settings.intraOpThreads ?? os.availableParallelism());
  const dominates = inferenceDominates(cpuMsPerImage, choice.decodeCpuMsPerImage);
  const spinning = dominates && !busy;
  if (spinning !== guess) {
    const first = session;
    session = undefined;
    await first.release();
    session = await createSession(req.model, { ...req.settings, spinning }, what);
  }
  return { cpuMsPerImage, inferenceDominates: dominates, machineBusy: busy, loadAverage: choice.loadAverage, spinning };
}

async function init(req: InitRequest): Promise<void> {
  let cost: InferenceCost | undefined;
  try {
    if (req.chooseSpinning && req.settings.device === 'cpu') cost = await chooseSpinning(req, req.chooseSpinning);
    else session = await createSession(req.model, req.settings, `the model ${req.modelLabel}`);
  } catch (err) {
    // Errors do not cross threads: send onnxruntime's own message, and whether it is the CUDA provider's.
    const cuda = err instanceof CudaUnavailableError;
    const cause = cuda ? err.cause : err;
    reply({ kind: 'init-failed', message: cause instanceof Error ? cause.message : String(cause), cuda });
    return;
  }
  if (!session) throw new Error('no session after init');
  const info: ModelInfo = { inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata), ...(cost ? { cost } : {}) };
  reply({ kind: 'ready', info });
}

/** A Float32Array that owns its whole buffer, so it can be transferred. */
function transferableFloats(data: ort.Tensor['data']): Float32Array {
  if (data instanceof Float32Array && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
    // Copy anyway if the buffer is not an ordinary ArrayBuffer (e.g. shared).
    if (data.buffer instanceof ArrayBuffer) return data;
  }
  if (data instanceof Float32Array) return data.slice();
  if (Array.isArray(data) || typeof (data as ArrayLike<unknown>).length !== 'number') {
    throw new Error('the output is not a numeric tensor');
  }
  return Float32Array.from(data as ArrayLike<number | bigint>, Number);
}

async function run(req: RunRequest): Promise<void> {
  if (!session) {
    reply({ kind: 'run-failed', id: req.id, message: 'the inference session did not load', buffer: req.buffer }, [
      req.buffer,
    ]);
    return;
  }
  const count = req.shape.reduce((a, b) => a * b, 1);
  const input = new ort.Tensor('float32', new Float32Array(req.buffer, 0, count), req.shape);
  try {
    const outputs = await session.run({ [req.inputName]: input }, [req.outputName]);
    const out = outputs[req.outputName];
    if (!out) throw new Error(`the model produced no output named "${req.outputName}"`);
    const features = transferableFloats(out.data);
    const shape = [...out.dims];
    out.dispose();
    try {
      reply({ kind: 'result', id: req.id, buffer: req.buffer, features, shape }, [
        req.buffer,
        features.buffer as ArrayBuffer,
      ]);
    } catch {
      // Buffers made by the native binding may refuse to move: send a copy instead.
      const copy = features.slice();
      reply({ kind: 'result', id: req.id, buffer: req.buffer, features: copy, shape }, [
        req.buffer,
        copy.buffer as ArrayBuffer,
      ]);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    reply({ kind: 'run-failed', id: req.id, message, buffer: req.buffer }, [req.buffer]);
  }
}

// Requests are handled strictly in arrival order: a run may be queued while the
// session is still loading, and results must leave in the order batches came.
let queue: Promise<void> = Promise.resolve();
port.on('message', (req: WorkerRequest) => {
  queue = queue
    .then(() => (req.kind === 'init' ? init(req) : run(req)))
    .catch((err) => {
      // Protocol misuse: crash the worker so the pool reports it.
      setImmediate(() => {
        throw err;
      });
    });
});
