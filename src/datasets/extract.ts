// Extracts a zip archive into a new folder, all or nothing: entries are
// written into a temporary sibling folder that is renamed into place at the
// end, so an interrupted extraction never leaves a half dataset behind.
// Entry names that would land outside the folder (absolute, `..`) are refused.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';

export class ExtractError extends Error {
  override name = 'ExtractError';
}

export interface ExtractOptions {
  signal?: AbortSignal;
  onProgress?: (entries: number, total: number) => void;
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: true, strictFileNames: false, validateEntrySizes: true }, (err, zip) =>
      err || !zip ? reject(err ?? new Error('no zip')) : resolve(zip),
    ),
  );
}

/** A safe relative path for an entry, or null for entries to leave out (macOS resource forks). */
export function entryPath(name: string): string | null {
  const normal = name.replace(/\\/g, '/');
  if (normal.startsWith('__MACOSX/')) return null;
  if (normal.startsWith('/') || /^[A-Za-z]:/.test(normal) || normal.split('/').includes('..')) {
    throw new ExtractError(`the archive entry "${name}" would be written outside the dataset folder; the archive is refused`);
  }
  return normal;
}

/** Extracts `zipFile` to `target`, which must not exist yet. Returns the number of files written. */
export async function extractZip(zipFile: string, target: string, options: ExtractOptions = {}): Promise<number> {
  const tmp = `${target}.tlpipe-tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  let files = 0;
  try {
    const zip = await openZip(zipFile).catch((e: Error) => {
      throw new ExtractError(`${zipFile} is not a readable zip archive (${e.message}); delete it to download it again`);
    });
    await new Promise<void>((resolve, reject) => {
      let seen = 0;
      const fail = (e: unknown) => {
        zip.close();
        // yauzl refuses entry names that are absolute or climb out with `..`.
        reject(e instanceof ExtractError ? e : new ExtractError(`cannot extract ${zipFile}: ${(e as Error).message}; nothing was extracted`));
      };
      zip.on('error', fail);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        void (async () => {
          options.signal?.throwIfAborted();
          options.onProgress?.(++seen, zip.entryCount);
          const rel = entryPath(entry.fileName);
          if (rel === null) return;
          const out = path.join(tmp, rel);
          if (rel.endsWith('/')) {
            await mkdir(out, { recursive: true });
            return;
          }
          await mkdir(path.dirname(out), { recursive: true });
          const stream = await new Promise<NodeJS.ReadableStream>((res, rej) => zip.openReadStream(entry, (err, s) => (err || !s ? rej(err) : res(s))));
          await pipeline(stream, createWriteStream(out));
          files++;
        })().then(() => zip.readEntry(), fail);
      });
      zip.readEntry();
    });
    await rename(tmp, target);
    return files;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
