// The per-user cache folder for things derived from tlpipe's own install
// (compiled validators, runtime library versions), never from a project's
// data: `$XDG_CACHE_HOME/tlpipe` or `~/.cache/tlpipe`. Everything kept there
// is a speed-up only; losing it costs recomputation.
import os from 'node:os';
import path from 'node:path';

export function userCacheDir(env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'tlpipe');
}
