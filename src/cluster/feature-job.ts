// A features chunk job: what it asks for, its id, and the result's format.
// The id is derived from the content of the request (model, runtime,
// transform, the chunk's image keys), so a restarted run, or a second run of
// the same pipeline, adds the same ids and BullMQ never holds the work twice;
// the result is stored under that id, so a chunk computed twice is harmless.
import { createHash } from 'node:crypto';
import type { TransformSpec } from '../images/transform-spec.js';
import { canonicalJson, sha256 } from '../runner/fingerprint.js';
import { decodeFeatureChunk } from '../features/chunks.js';
import type { RuntimeVersions } from './runtime.js';

export const FEATURE_JOB_FORMAT = 1;

/** What a worker must have to take a job: one BullMQ queue per distinct set. */
export interface Requirements {
  format: number;
  model: { sha256: string; size: number };
  runtime: RuntimeVersions;
  /** Present when the run signs and checks results (TLPIPE_REMOTE_KEY): a worker without a key refuses. */
  signedResults?: true;
}

/** One view of one image: copy 0 is the plain view, others augmented copies. */
export interface JobImage {
  /** The feature vector's key (the image hash for copy 0). */
  key: string;
  /** sha256 of the image file's bytes. */
  hash: string;
  /** Path relative to the data root, '/'-separated. */
  path: string;
  copy: number;
}

export interface FeatureJobData {
  format: number;
  requirements: Requirements;
  spec: TransformSpec;
  augmentSeed: number;
  batchSize?: number;
  featureWidth: number;
  /** Where the run found the images; workers map it with --data-root. */
  dataRoot: string;
  images: JobImage[];
}

export const requirementsId = (r: Requirements) => sha256(canonicalJson(r)).slice(0, 16);

/** The job id: a hash of everything that determines the chunk's bytes. */
export function featureJobId(data: Omit<FeatureJobData, 'dataRoot' | 'batchSize'>): string {
  return `fx-${sha256(
    canonicalJson({
      format: data.format,
      requirements: data.requirements,
      spec: data.spec,
      augmentSeed: data.augmentSeed,
      featureWidth: data.featureWidth,
      images: data.images.map((i) => [i.key, i.hash, i.copy]),
    }),
  )}`;
}


// ── the result: [magic][u32 header length][header JSON][payload] ─────────

const MAGIC = Buffer.from('TLFXJOB1', 'ascii');

export interface ResultHeader {
  format: number;
  job: string;
  width: number;
  /** Keys with a feature vector, in payload order. */
  count: number;
  payloadSha256: string;
  /** Images that could not be decoded: skipped, as a one-machine run skips them. */
  failed: { key: string; reason: string; kind?: string }[];
  /** The worker that computed it. */
  worker: string;
}

export function encodeResult(header: Omit<ResultHeader, 'payloadSha256' | 'format'>, payload: Uint8Array): Buffer {
  const full: ResultHeader = { format: FEATURE_JOB_FORMAT, ...header, payloadSha256: createHash('sha256').update(payload).digest('hex') };
  const json = Buffer.from(JSON.stringify(full), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  return Buffer.concat([MAGIC, length, json, payload]);
}

export type Verified =
  | { ok: true; header: ResultHeader; rows: Map<string, Float32Array> }
  | { ok: false; problem: string };

/**
 * Checks a stored result against the job that asked for it: the format, the
 * checksum, the width, and that it holds exactly the job's keys (each with a
 * vector or listed as failed). Anything else is not accepted.
 */
export function verifyResult(bytes: Buffer, jobId: string, data: Pick<FeatureJobData, 'featureWidth' | 'images'>): Verified {
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return { ok: false, problem: 'not a features result (bad magic)' };
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + headerLength > bytes.length) return { ok: false, problem: 'truncated header' };
  let header: ResultHeader;
  try {
    header = JSON.parse(bytes.toString('utf8', start, start + headerLength)) as ResultHeader;
  } catch {
    return { ok: false, problem: 'unreadable header' };
  }
  if (header.format !== FEATURE_JOB_FORMAT) return { ok: false, problem: `format ${header.format}, expected ${FEATURE_JOB_FORMAT}` };
  if (header.job !== jobId) return { ok: false, problem: `it is the result of job ${String(header.job).slice(0, 15)}, not ${jobId.slice(0, 15)}` };
  if (header.width !== data.featureWidth) return { ok: false, problem: `width ${header.width}, the stage needs ${data.featureWidth}` };
  const payload = bytes.subarray(start + headerLength);
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) return { ok: false, problem: 'checksum mismatch' };
  const rows = decodeFeatureChunk(payload, data.featureWidth);
  if (!rows || rows.size !== header.count) return { ok: false, problem: 'payload does not match its header' };
  const failed = new Set((header.failed ?? []).map((f) => f.key));
  const wanted = new Set(data.images.map((i) => i.key));
  for (const key of rows.keys()) if (!wanted.has(key)) return { ok: false, problem: `it claims image ${key.slice(0, 12)}, which the job did not ask for` };
  for (const key of failed) if (!wanted.has(key) || rows.has(key)) return { ok: false, problem: `it lists image ${key.slice(0, 12)} as failed wrongly` };
  for (const key of wanted) if (!rows.has(key) && !failed.has(key)) return { ok: false, problem: `image ${key.slice(0, 12)} is missing` };
  return { ok: true, header, rows };
}
