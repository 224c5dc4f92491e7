// Secrets never reach the disk: what counts as a secret-looking name, how run
// records mask secrets, and how fingerprint records hide them (as hashes, so a
// changed secret still reruns its stage).
import { sha256 } from './fingerprint.js';
import type { Json } from './step.js';

export const SECRET_NAME = /(token|secret|passw(or)?d|passphrase|api[_-]?key|access[_-]?key|private[_-]?key|credential|authorization|(^|[_-])auth($|[_-]))/i;

/**
 * Masks secrets before anything is written: parameters whose name looks like a
 * secret, and any value equal to a secret-looking environment variable's.
 */
export function maskSecrets<T>(value: T, env: Record<string, string | undefined> = process.env): T {
  const secrets = Object.entries(env)
    .filter(([k, v]) => SECRET_NAME.test(k) && typeof v === 'string' && v.length >= 4)
    .map(([, v]) => v!);
  const walk = (v: unknown, key?: string): unknown => {
    if (typeof v === 'string') {
      if (key && SECRET_NAME.test(key)) return '***';
      let out = v;
      for (const s of secrets) out = out.split(s).join('***');
      return out;
    }
    if (Array.isArray(v)) return v.map((x) => walk(x));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return v;
  };
  return walk(value) as T;
}

/**
 * Parameters as they go into a fingerprint record, which is stored beside the
 * artifact: a value under a secret-looking key (an exec `env: {API_TOKEN: ...}`)
 * is replaced by its hash, so a changed secret still reruns the stage but the
 * secret itself is never written to the store.
 */
export function hideSecrets(value: Json, key?: string): Json {
  if (key && SECRET_NAME.test(key) && (typeof value === 'string' || typeof value === 'number')) {
    return `sha256:${sha256(String(value))}`;
  }
  if (Array.isArray(value)) return value.map((v) => hideSecrets(v));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hideSecrets(v, k)]));
  }
  return value;
}
