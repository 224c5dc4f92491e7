// The per-user cache folder for things derived from tlpipe's own install
// (compiled validators, runtime library versions), never from a project's
// data: `$XDG_CACHE_HOME/tlpipe` or `~/.cache/tlpipe`. Everything kept there
// is a speed-up only; losing it costs recomputation.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function userCacheDir(env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'tlpipe');
}

/**
 * Puts `data` at `file` (temp file, then rename: a reader sees the old file or
 * the new one), creating its folder. Best effort: a read-only or full home
 * only means the value is computed again next time, so failures are ignored.
 */
export function keepInUserCache(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}
