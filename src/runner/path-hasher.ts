// Content hashes of the files and folders stages read. Re-hashing a large data
// folder on every `status` would be slow, so hashes are remembered by
// (inode, size, mtime): a file whose stat is unchanged is taken as unchanged,
// as DVC and make do. The memo is only a speed-up: losing it is harmless.
import fs from 'node:fs/promises';
import path from 'node:path';
import { canonicalJson, sha256 } from './fingerprint.js';
import { hashFile } from './store.js';

interface Memo {
  [file: string]: { stat: string; sha256: string };
}

export class PathHasher {
  private memo: Memo = {};
  private dirty = false;

  constructor(private readonly memoFile?: string) {}

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

  async hashFile(file: string): Promise<string> {
    const st = await fs.stat(file);
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    const known = this.memo[file];
    if (known && known.stat === key) return known.sha256;
    const digest = await hashFile(file);
    this.memo[file] = { stat: key, sha256: digest };
    this.dirty = true;
    return digest;
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
      for (const name of entries) {
        const full = path.join(dir, name);
        const s = await fs.stat(full).catch(() => undefined);
        if (!s) continue; // dangling symlink: not content
        const r = rel ? `${rel}/${name}` : name;
        if (s.isDirectory()) await walk(full, r);
        else if (s.isFile()) lines.push(`${r}\0${await this.hashFile(full)}`);
      }
    };
    await walk(p, '');
    return sha256(lines.join('\n'));
  }
}
