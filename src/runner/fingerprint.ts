// A stage's Fingerprint: the hash of a versioned record of everything that can
// change its result. Computed before the stage runs and saved beside its
// artifact, so "why did this rerun?" is a diff of two records.
import { createHash } from 'node:crypto';
import type { Json } from './step.js';

/** Bump when the record's shape or meaning changes: every old artifact stops matching. */
export const FINGERPRINT_FORMAT = 2;

export interface FingerprintRecord {
  format: number;
  step: { type: string; version: number };
  /** Parameters after defaults, canonicalised. Stage descriptions and comments are not here. */
  params: Json;
  /** Input name → upstream fingerprint. */
  inputs: { [name: string]: string };
  /** What the step says it depends on beyond parameters (file hashes, model hashes). */
  dependencies: Json;
}

/** JSON with object keys sorted at every level, so key order never changes a hash. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function fingerprintOf(record: FingerprintRecord): string {
  return sha256(canonicalJson(record));
}

/** Human-readable differences between two records, e.g. `params.lr: 0.001 → 0.01`. */
export function describeChanges(before: FingerprintRecord, after: FingerprintRecord): string[] {
  const changes: string[] = [];
  if (before.format !== after.format) changes.push(`fingerprint format ${before.format} → ${after.format}`);
  if (before.step.type !== after.step.type) changes.push(`step ${before.step.type} → ${after.step.type}`);
  else if (before.step.version !== after.step.version)
    changes.push(`step version ${before.step.version} → ${after.step.version}`);
  diff(before.params, after.params, 'params', changes);
  for (const name of new Set([...Object.keys(before.inputs), ...Object.keys(after.inputs)])) {
    if (before.inputs[name] !== after.inputs[name]) changes.push(`input "${name}" changed`);
  }
  diff(before.dependencies, after.dependencies, 'dependencies', changes);
  return changes;
}

const short = (v: unknown) => {
  const s = canonicalJson(v) ?? 'undefined';
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
};

function diff(a: unknown, b: unknown, at: string, out: string[]): void {
  if (canonicalJson(a) === canonicalJson(b)) return;
  const isObj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) diff(ao[k], bo[k], `${at}.${k}`, out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((x, i) => diff(x, b[i], `${at}[${i}]`, out));
    return;
  }
  if (at.startsWith('dependencies')) out.push(`${at} changed`);
  else out.push(`${at}: ${short(a)} → ${short(b)}`);
}
