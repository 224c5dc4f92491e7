// Worker thread that runs an image loader from a module (see LoaderModule).
// Several loads run at once: their native parts (sharp on libuv's threadpool)
// overlap, their JavaScript parts take turns on this thread.
import { parentPort } from 'node:worker_threads';
import type { LoaderInit, LoaderReply, LoaderRequest, LoadRequest, SerializedError } from './loader-protocol.js';

type Loader = (item: unknown, target: Float32Array, offset: number) => Promise<void | Float32Array>;

if (!parentPort) throw new Error('loader-worker.js must be started as a worker thread');
const port = parentPort;
const reply = (message: LoaderReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

let loader: Promise<Loader> | undefined;
let elements = 0;
const spares: ArrayBuffer[] = [];

function serialize(err: unknown): SerializedError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(err) };
}

async function createLoader(req: LoaderInit): Promise<Loader> {
  const mod = (await import(req.url)) as Record<string, unknown>;
  const factory = mod[req.exportName];
  if (typeof factory !== 'function') {
    throw new Error(`the loader module ${req.url} has no exported function "${req.exportName}"`);
  }
  const made: unknown = await factory(req.options);
  if (typeof made !== 'function') {
    throw new Error(`${req.exportName}() in ${req.url} must return a loader function, got ${typeof made}`);
  }
  return made as Loader;
}

async function load(req: LoadRequest): Promise<void> {
  if (req.spare) spares.push(req.spare);
  const run = await loader!;
  const buffer = spares.pop() ?? new ArrayBuffer(elements * 4);
  const target = new Float32Array(buffer);
  try {
    const returned = await run(req.item, target, 0);
    if (returned !== undefined) {
      if (!(returned instanceof Float32Array) || returned.length !== elements) {
        throw new Error(`the loader returned ${describe(returned)}; expected a Float32Array of ${elements} values`);
      }
      target.set(returned);
    }
  } catch (err) {
    spares.push(buffer);
    reply({ kind: 'load-failed', id: req.id, error: serialize(err) });
    return;
  }
  reply({ kind: 'loaded', id: req.id, tensor: buffer }, [buffer]);
}

function describe(v: unknown): string {
  return ArrayBuffer.isView(v) ? `a ${v.constructor.name} of ${(v as unknown as ArrayLike<unknown>).length} values` : typeof v;
}

port.on('message', (req: LoaderRequest) => {
  if (req.kind === 'init') {
    elements = req.elements;
    loader = createLoader(req);
    loader.catch((err: unknown) => reply({ kind: 'init-failed', error: serialize(err) }));
    return;
  }
  // A failed init is reported once, above; loads after it have nothing to run.
  load(req).catch(() => {});
});
