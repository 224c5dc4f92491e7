// Optional signing of what is pushed (TLPIPE_REMOTE_KEY): every entry and
// chunk carries an HMAC-SHA256 made with the team's key, and with a key set a
// pull accepts only what carries a valid one. Someone who can write to the
// bucket but lacks the key cannot plant results under another stage's
// fingerprint (the poisoning of shared build caches, e.g. CVE-2025-36852).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../runner/errors.js';

export type SigningKey = { key: Buffer };

export function signingKeyFrom(env = process.env): SigningKey | undefined {
  const text = env.TLPIPE_REMOTE_KEY;
  if (text === undefined || text === '') return undefined;
  if (text.length < 16) throw new UsageError('TLPIPE_REMOTE_KEY is too short: use at least 16 characters (e.g. the output of: openssl rand -hex 32).');
  return { key: Buffer.from(text, 'utf8') };
}

/** The HMAC of one signed thing; `kind` separates entries from chunks so one cannot stand for the other. */
export function sign(key: SigningKey, kind: 'entry' | 'chunk' | 'result', ...parts: (string | Uint8Array)[]): string {
  const h = createHmac('sha256', key.key);
  h.update(`tlpipe-${kind}-v1`);
  for (const p of parts) {
    h.update('\0');
    h.update(p);
  }
  return h.digest('hex');
}

export function verify(key: SigningKey, signature: unknown, kind: 'entry' | 'chunk' | 'result', ...parts: (string | Uint8Array)[]): boolean {
  if (typeof signature !== 'string' || !/^[0-9a-f]{64}$/.test(signature)) return false;
  return timingSafeEqual(Buffer.from(sign(key, kind, ...parts), 'hex'), Buffer.from(signature, 'hex'));
}
