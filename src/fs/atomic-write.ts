// One way to put a file in place: readers see the old file or the whole new
// one, never a part, even after a crash or a power loss.
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes `data` to `tmp` (or, without data, flushes what `tmp` already holds),
 * syncs it to disk and renames it over `target`. On any failure the temp file
 * is removed and the error rethrown for the caller to explain.
 */
export async function replaceAtomically(tmp: string, target: string, data?: string | Uint8Array): Promise<void> {
  try {
    const handle = await fs.open(tmp, data === undefined ? 'r+' : 'w');
    try {
      if (data !== undefined) await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
