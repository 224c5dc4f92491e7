// Content hashes of the files and folders stages read, and of the store's
// objects when a cached artifact is verified. Re-hashing a large data folder
// (or a large cached matrix) on every `status` and every cached run would be
// slow, so hashes are remembered by (inode, size, mtime, ctime): a file whose
// stat is unchanged is taken as unchanged, as DVC and make do (ctime too: it
// changes on every write, chmod or utimes and no program can set it back).
// The memo is only a speed-up: losing it is harmless. See docs/reliability.md.
import { type Stats, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { canonicalJson, sha256 } from './fingerprint.js';
import { hashFile } from './store.js';

const STAT_CONCURRENCY = 32;

/** `fn` over `items`, at most `limit` at once, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A synchronous stat slower than this on average means a slow (network, cold) file system. */
const SLOW_STAT_MS = 0.2;
const STATS_BEFORE_JUDGING = 64;

/**
 * Stats of `files` (undefined for one that is gone), in order. Warm local
 * metadata answers a synchronous stat in microseconds, several times faster
 * than a round trip through the thread pool; where the first stats show a slow
 * file system, the rest go concurrently, so waits overlap.
 */
async function statAll(files: readonly string[]): Promise<(Stats | undefined)[]> {
  const out: (Stats | undefined)[] = [];
  const started = performance.now();
  for (const file of files) {
    if (out.length >= STATS_BEFORE_JUDGING && performance.now() - started > SLOW_STAT_MS * out.length) break;
    try {
      out.push(statSync(file));
    } catch {
      out.push(undefined);
    }
  }
  const rest = await mapLimit(files.slice(out.length), STAT_CONCURRENCY, (file) => fs.stat(file).catch(() => undefined));
  return [...out, ...rest];
}

/** What proves a file unchanged: the same inode, size, mtime and ctime. */
const statKey = (st: Stats) => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

interface Memo {
  [file: string]: { stat: string; sha256: string };
}

export class PathHasher {
  private memo: Memo = {};
  private dirty = false;

  constructor(
    private readonly memoFile?: string,
    /** How a file is hashed when its stat does not prove it unchanged. */
    private readonly hash: (file: string) => Promise<string> = hashFile,
  ) {}

  async load(): Promise<void> {
    if (!this.memoFile) return;
    try {
      this.memo = JSON.parse(await fs.readFile(this.memoFile, 'utf8')) as Memo;
    } catch {
      this.memo = {};
    }
  }

  /** Saves the memo (best effort; concurrent runs may overwrite each other, which only costs re-hashing). */
  async save(write: (file: string, text: string) => Promise<void>): Promise<void> {
    if (!this.memoFile || !this.dirty) return;
    await write(this.memoFile, canonicalJson(this.memo)).catch(() => undefined);
    this.dirty = false;
  }

  async hashFile(file: string, stat?: Stats): Promise<string> {
    const st = stat ?? (await fs.stat(file));
    const key = statKey(st);
    const known = this.memo[file];
    if (known && known.stat === key) return known.sha256;
    const digest = await this.hash(file);
    this.memo[file] = { stat: key, sha256: digest };
    this.dirty = true;
    return digest;
  }

  /**
   * Records the hash of a file just written from known content (a store object
   * as it is committed, a published output), so that the next verification of
   * it is a stat, not a second read.
   */
  remember(file: string, stat: Stats, sha256: string): void {
    this.memo[file] = { stat: statKey(stat), sha256 };
    this.dirty = true;
  }

  /** A file's hash, or for a folder the hash of its sorted (relative path, hash) list. */
  async hashPath(p: string): Promise<string> {
    const st = await fs.stat(p).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`${p} does not exist or cannot be read (${e.code}).`);
    });
    if (!st.isDirectory()) return this.hashFile(p);
    const lines: string[] = [];
    const seen = new Set<string>();
    const walk = async (dir: string, rel: string) => {
      const real = await fs.realpath(dir);
      if (seen.has(real)) return; // a symlink loop: each real folder counts once
      seen.add(real);
      const entries = (await fs.readdir(dir)).sort();
      const stats = await statAll(entries.map((name) => path.join(dir, name)));
      const hashes = await mapLimit(entries, STAT_CONCURRENCY, (name, i) => {
        const s = stats[i];
        return s?.isFile() ? this.hashFile(path.join(dir, name), s) : Promise.resolve(undefined);
      });
      for (const [i, name] of entries.entries()) {
        const s = stats[i];
        if (!s) continue; // dangling symlink: not content
        const r = rel ? `${rel}/${name}` : name;
        if (s.isDirectory()) await walk(path.join(dir, name), r);
        else if (s.isFile()) lines.push(`${r}\0${hashes[i]}`);
      }
    };
    await walk(p, '');
    return sha256(lines.join('\n'));
  }
}
