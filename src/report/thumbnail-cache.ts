// Thumbnails the reports embed, remembered by the image's path and stat: a
// cached run rewrites its report with the same misclassified images, and
// decoding them again would load sharp (tens of ms) for nothing. Kept in the
// per-user cache, bounded; losing it costs only decoding again.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { keepInUserCache, userCacheDir } from '../runner/user-cache.js';

/** Thumbnails kept at most (a few KB each); the oldest go first. */
export const THUMBNAILS_KEPT = 2000;

export class ThumbnailCache {
  constructor(readonly dir = path.join(userCacheDir(), 'thumbnails')) {}

  /** The key of `file` as it is now; undefined when it cannot be stat-ed. */
  key(file: string, variant: string): string | undefined {
    try {
      const st = statSync(file);
      return createHash('sha256').update(JSON.stringify([path.resolve(file), st.ino, st.size, st.mtimeMs, st.ctimeMs, variant])).digest('hex');
    } catch {
      return undefined;
    }
  }

  get(key: string): Buffer | undefined {
    try {
      return readFileSync(path.join(this.dir, `${key}.bin`));
    } catch {
      return undefined;
    }
  }

  put(key: string, data: Buffer): void {
    keepInUserCache(path.join(this.dir, `${key}.bin`), data);
  }

  /** Drops the oldest thumbnails beyond THUMBNAILS_KEPT. */
  prune(kept = THUMBNAILS_KEPT): void {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.bin'));
    } catch {
      return;
    }
    if (names.length <= kept) return;
    const aged = names.map((n) => ({ n, t: statSync(path.join(this.dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 }));
    aged.sort((a, b) => a.t - b.t);
    for (const { n } of aged.slice(0, names.length - kept)) rmSync(path.join(this.dir, n), { force: true });
  }
}
