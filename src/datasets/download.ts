// A resumable, verified download of one large file. Bytes go to `FILE.part`
// as they arrive; an interrupted download resumes with an HTTP Range request
// from what is already there (a server that ignores Range starts it over).
// The file gets its final name only once its size and sha256 are right.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

export class DownloadError extends Error {
  override name = 'DownloadError';
}

export interface DownloadOptions {
  /** Expected size in bytes, when published. */
  size?: number;
  /** Expected sha256 (hex), when known; without it the download is hashed and the hash returned. */
  sha256?: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number | undefined) => void;
  /** Called when an earlier partial download is resumed, with its size. */
  onResume?: (from: number) => void;
}

export async function sha256OfFile(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sizeOf = (file: string) => stat(file).then((s) => s.size, () => 0);

/** Downloads `url` to `target`; returns the file's sha256. */
export async function download(url: string, target: string, options: DownloadOptions = {}): Promise<string> {
  const part = `${target}.part`;
  await mkdir(path.dirname(target), { recursive: true });
  let from = await sizeOf(part);
  if (options.size !== undefined && from > options.size) {
    await rm(part, { force: true }); // longer than the whole file: not a prefix of it
    from = 0;
  }
  const headers: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {};
  let response: Response;
  try {
    response = await fetch(url, { headers, signal: options.signal, redirect: 'follow' });
  } catch (e) {
    if (options.signal?.aborted) throw e;
    const cause = (e as { cause?: Error }).cause;
    throw new DownloadError(`Could not download ${url}: ${(e as Error).message}${cause ? ` (${cause.message})` : ''}. Check the network and run again; the download resumes.`);
  }
  if (response.status === 416 && options.size !== undefined && from === options.size) {
    await response.body?.cancel();
  } else if (response.status === 206 || response.status === 200) {
    if (response.status === 200 && from > 0) from = 0; // the server ignored Range: start over
    else if (from > 0) options.onResume?.(from);
    const length = Number(response.headers.get('content-length') ?? NaN);
    const total = options.size ?? (Number.isFinite(length) ? from + length : undefined);
    await appendBody(response, part, from, total, options);
  } else {
    await response.body?.cancel();
    throw new DownloadError(`Could not download ${url}: HTTP ${response.status} ${response.statusText}.`);
  }

  const size = await sizeOf(part);
  if (options.size !== undefined && size !== options.size) {
    throw new DownloadError(
      `The download of ${url} stopped at ${size} of ${options.size} bytes. Run again: it resumes from byte ${size}.`,
    );
  }
  const actual = await sha256OfFile(part, options.signal);
  if (options.sha256 && actual !== options.sha256.toLowerCase()) {
    await rm(part, { force: true });
    throw new DownloadError(
      `The download of ${url} has sha256 ${actual}, not the expected ${options.sha256}: it was deleted. ` +
        'If the file was republished on purpose, update the sha256; otherwise try again later.',
    );
  }
  await rename(part, target);
  return actual;
}

async function appendBody(response: Response, part: string, from: number, total: number | undefined, options: DownloadOptions): Promise<void> {
  if (!response.body) return;
  const handle = await open(part, from > 0 ? 'a' : 'w');
  let done = from;
  try {
    options.onProgress?.(done, total);
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      await handle.write(chunk);
      done += chunk.byteLength;
      options.onProgress?.(done, total);
    }
    await handle.sync();
  } catch (e) {
    if (options.signal?.aborted) throw e;
    throw new DownloadError(
      `The download was interrupted at ${done}${total ? ` of ${total}` : ''} bytes (${(e as Error).message}). Run again: it resumes from there.`,
    );
  } finally {
    await handle.close();
  }
}
