// Finding a pretrained model file: by catalogue name, by local path, or by URL
// with its sha256. Catalogue models come, in order, from the folder named by
// TLPIPE_MODELS (no network: CI and air-gapped machines), from the user cache
// (~/.cache/tlpipe/models, honouring XDG_CACHE_HOME), or are downloaded once
// into that cache. Every file is verified by sha256 before use.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type CatalogueEntry, findCatalogueEntry } from '../onnx/catalogue.js';
import { StepFailure } from '../runner/errors.js';
import { hashFile as hashFileContents } from '../runner/store.js';

/** A model that cannot be found, downloaded or verified: the user can fix it, so no stack trace. */
export class ModelResolveError extends StepFailure {}

/** How a stage names its model: a catalogue name, a path (.onnx or containing '/'), or a URL. */
export type ModelReference =
  | { kind: 'catalogue'; entry: CatalogueEntry }
  | { kind: 'path'; path: string }
  | { kind: 'url'; url: string; sha256: string };

export interface ResolvedModel {
  file: string;
  sha256: string;
  /** Where it came from, for messages and records. */
  source: string;
  entry?: CatalogueEntry;
}

export interface ResolveOptions {
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
  onProgress?: (done: number, total?: number) => void;
  onWarning?: (message: string) => void;
  fetch?: typeof fetch;
  /**
   * How a file already on disk is hashed. A run passes its stat-trusted hasher
   * (runner/path-hasher.ts), so a 100 MB model is not read again on every run.
   */
  hashFile?: (file: string) => Promise<string>;
}

export function parseModelReference(model: string, sha256: string | undefined, projectDir: string): ModelReference {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(model)) {
    if (!/^https?:\/\//i.test(model)) throw new ModelResolveError(`Model URL "${model}" must use http or https.`);
    if (!sha256 || !/^[0-9a-f]{64}$/i.test(sha256)) {
      throw new ModelResolveError(`A model given by URL needs its sha256 (64 hex digits) under "sha256:", so the download can be verified.`);
    }
    return { kind: 'url', url: model, sha256: sha256.toLowerCase() };
  }
  if (model.endsWith('.onnx') || model.includes('/') || model.includes(path.sep)) {
    return { kind: 'path', path: path.resolve(projectDir, model) };
  }
  try {
    return { kind: 'catalogue', entry: findCatalogueEntry(model) };
  } catch (e) {
    throw new ModelResolveError((e as Error).message);
  }
}

export function userCacheDir(env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'tlpipe', 'models');
}

/** The sha256 a reference promises, known without reading the file (null for local paths). */
export function expectedSha256(ref: ModelReference): string | null {
  return ref.kind === 'catalogue' ? ref.entry.sha256 : ref.kind === 'url' ? ref.sha256 : null;
}

export async function resolveModel(ref: ModelReference, options: ResolveOptions = {}): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  const hashFile = options.hashFile ?? hashFileContents;
  if (ref.kind === 'path') {
    const st = await fs.stat(ref.path).catch(() => undefined);
    if (!st?.isFile()) throw new ModelResolveError(`Model file ${ref.path} not found.`);
    return { file: ref.path, sha256: await hashFile(ref.path), source: ref.path };
  }
  const sha256 = expectedSha256(ref)!;
  const fileName = ref.kind === 'catalogue' ? `${ref.entry.name}.onnx` : `${sha256}.onnx`;
  const entry = ref.kind === 'catalogue' ? ref.entry : undefined;

  if (env.TLPIPE_MODELS) {
    const local = path.join(env.TLPIPE_MODELS, fileName);
    if (await fs.stat(local).catch(() => undefined)) {
      const actual = await hashFile(local);
      if (actual !== sha256) {
        throw new ModelResolveError(
          `${local} (from TLPIPE_MODELS) has sha256 ${actual}, but ${entry ? `the catalogue's ${entry.name}` : 'the pipeline'} expects ${sha256}. Replace the file with the right one.`,
        );
      }
      return { file: local, sha256, source: local, entry };
    }
  }

  const cacheDir = userCacheDir(env);
  const cached = path.join(cacheDir, fileName);
  if (await fs.stat(cached).catch(() => undefined)) {
    if ((await hashFile(cached)) === sha256) return { file: cached, sha256, source: cached, entry };
    options.onWarning?.(`The cached model ${cached} is corrupt (sha256 mismatch); it is downloaded again.`);
    await fs.rm(cached, { force: true });
  }
  const url = ref.kind === 'catalogue' ? ref.entry.url : ref.url;
  await download(url, cached, sha256, entry?.sizeBytes, options);
  return { file: cached, sha256, source: url, entry };
}

async function download(url: string, target: string, sha256: string, size: number | undefined, options: ResolveOptions): Promise<void> {
  const doFetch = options.fetch ?? fetch;
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.part-${process.pid}-${randomBytes(3).toString('hex')}`;
  const offline = `Put the file in a folder and set TLPIPE_MODELS to that folder, or give the model's path instead of its name.`;
  let response: Response;
  try {
    response = await doFetch(url, { signal: options.signal });
  } catch (e) {
    throw new ModelResolveError(`Could not download ${url}: ${(e as Error).message}${(e as { cause?: Error }).cause ? ` (${(e as { cause: Error }).cause.message})` : ''}. ${offline}`);
  }
  if (!response.ok || !response.body) throw new ModelResolveError(`Could not download ${url}: HTTP ${response.status}. ${offline}`);
  const total = Number(response.headers.get('content-length')) || size;
  const hash = createHash('sha256');
  const handle = await fs.open(tmp, 'w');
  let done = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      await handle.write(chunk);
      done += chunk.length;
      options.onProgress?.(done, total);
    }
    await handle.sync();
    await handle.close();
    const actual = hash.digest('hex');
    if (actual !== sha256) throw new ModelResolveError(`The download of ${url} has sha256 ${actual}, not the expected ${sha256}; it was discarded.`);
    await fs.rename(tmp, target);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    if (e instanceof ModelResolveError) throw e;
    throw new ModelResolveError(`Could not download ${url}: ${(e as Error).message}. ${offline}`);
  }
}
