// The remote cache: what runs pull before computing a stage and push after
// it, over any RemoteBackend (layout in backend.ts). Built like Bazel's remote
// cache: an entry per stage fingerprint beside a content-addressed store of
// objects named by (sha256, size).
// - Objects go up first, the entry last: a push killed at any moment leaves
//   no entry that names a missing object.
// - Everything pulled is verified before the local store sees it: the entry's
//   fingerprint against its record, its checksum, its signature (with a key);
//   each object's size and sha256 while it streams in. Anything wrong is a
//   miss with a warning (the stage is computed here), never a crash and never
//   a wrong answer; a writable remote also drops the damaged entry so the
//   local result replaces it.
// - An unreachable remote is warned about once and then left alone for the
//   rest of the command: runs go on locally. `strict` (push and pull
//   commands) turns that into an error with exit code 69.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ExitCode, TlpipeError } from '../runner/errors.js';
import { canonicalJson, fingerprintOf } from '../runner/fingerprint.js';
import type { RunRecord } from '../runner/runs.js';
import { type ArtifactEntry, type ArtifactStore, chunkPayloadHash, decodeChunk, entryChecksum, hashFile, STORE_FORMAT } from '../runner/store.js';
import { keys, type RemoteBackend, RemoteError, RemoteUnavailable } from './backend.js';
import { type SigningKey, sign, verify } from './signing.js';

/** Entries are small JSON files; anything much larger is not one. */
const MAX_ENTRY_BYTES = 64 * 1024 * 1024;
const ENVELOPE_FORMAT = 1;
const SIGNED_CHUNK_MAGIC = Buffer.from('TLSIG1', 'ascii');

export interface RemoteCacheOptions {
  /** How messages name the remote. */
  name: string;
  readOnly: boolean;
  signing?: SigningKey;
  warn: (message: string) => void;
  /** Unreachable or failing remote: throw (exit 69) instead of warning and going on. */
  strict?: boolean;
  /** Retries of a transfer whose stream broke part-way, with exponential backoff. */
  streamRetries?: number;
  backoffMs?: number;
}

export type Progress = (doneBytes: number, totalBytes: number) => void;

export type PullResult = { pulled: true; entry: ArtifactEntry; bytes: number; ms: number } | { pulled: false; reason: string };
export type PushResult = { pushed: boolean; bytes: number; ms: number; reason?: string };

/** The remote cannot be reached and the command cannot go on without it. */
export class RemoteUnreachable extends TlpipeError {
  constructor(message: string) {
    super(message, ExitCode.unavailable);
  }
}

interface Envelope {
  'tlpipe-remote': number;
  entry: ArtifactEntry;
  hmac?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RemoteCache {
  private backendPromise?: Promise<RemoteBackend>;
  /** Why the remote was given up on in this command, once it could not be reached. */
  unreachable?: string;

  constructor(
    private readonly openBackend: () => Promise<RemoteBackend>,
    private readonly store: ArtifactStore,
    readonly options: RemoteCacheOptions,
  ) {}

  get name(): string {
    return this.options.name;
  }

  get writable(): boolean {
    return !this.options.readOnly;
  }

  /** Opened on first use: a fully cached run never loads the S3 SDK. */
  private backend(): Promise<RemoteBackend> {
    this.backendPromise ??= this.openBackend();
    return this.backendPromise;
  }

  close(): void {
    void this.backendPromise?.then((b) => b.close(), () => undefined);
  }

  private warn(message: string): void {
    this.options.warn(message);
  }

  /** Runs one remote operation; failures become a warning and `fallback` (or an error when strict). */
  private async attempt<T>(what: string, fn: (b: RemoteBackend) => Promise<T>, fallback: T): Promise<T> {
    if (this.unreachable) {
      if (this.options.strict) throw new RemoteUnreachable(`The remote ${this.name} cannot be reached: ${this.unreachable}`);
      return fallback;
    }
    try {
      return await fn(await this.backend());
    } catch (e) {
      if (e instanceof RemoteUnavailable) {
        this.unreachable = e.message;
        if (this.options.strict) throw new RemoteUnreachable(`The remote ${this.name} cannot be reached while ${what}: ${e.message}`);
        this.warn(`The remote ${this.name} cannot be reached (${e.message}); going on without it: stages are computed here and nothing more is pushed.`);
        return fallback;
      }
      if (e instanceof RemoteError) {
        if (this.options.strict) throw new TlpipeError(`Remote ${this.name}, ${what}: ${e.message}`, ExitCode.runFailed);
        this.warn(`Remote ${this.name}, ${what}: ${e.message}`);
        return fallback;
      }
      throw e;
    }
  }

  // ---- entries ----

  private envelopeFor(entry: ArtifactEntry): Buffer {
    const envelope: Envelope = { 'tlpipe-remote': ENVELOPE_FORMAT, entry };
    if (this.options.signing) envelope.hmac = sign(this.options.signing, 'entry', canonicalJson(entry));
    return Buffer.from(`${JSON.stringify(envelope)}\n`);
  }

  /**
   * The remote's entry for a fingerprint, checked; undefined when there is none
   * or it is not to be trusted (a warning says which).
   */
  private async readEntry(b: RemoteBackend, fingerprint: string, options: { quiet?: boolean } = {}): Promise<ArtifactEntry | undefined> {
    const key = keys.entry(fingerprint);
    const text = await this.readSmall(b, key, MAX_ENTRY_BYTES);
    if (text === undefined) return undefined;
    const problem = this.entryProblem(text, fingerprint);
    if (typeof problem !== 'string') return problem;
    if (!options.quiet) {
      this.warn(`The remote ${this.name} has an entry for ${fingerprint.slice(0, 12)} that ${problem}; it is not used${this.writable ? ' and is removed' : ''}, the stage is computed here.`);
    }
    if (this.writable) await b.delete([key]);
    return undefined;
  }

  private entryProblem(text: Buffer, fingerprint: string): string | ArtifactEntry {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text.toString('utf8')) as Envelope;
    } catch {
      return 'is not valid JSON (damaged)';
    }
    const entry = envelope?.entry;
    if (envelope?.['tlpipe-remote'] !== ENVELOPE_FORMAT || !entry || typeof entry !== 'object') return 'is not a tlpipe remote entry';
    if (entry.format !== STORE_FORMAT) return `has store format ${String(entry.format)} (this tlpipe reads ${STORE_FORMAT})`;
    if (entry.fingerprint !== fingerprint || fingerprintOf(entry.record) !== fingerprint) return 'does not match its fingerprint (altered)';
    if (entry.checksum !== entryChecksum(entry)) return 'does not match its checksum (altered)';
    for (const f of Object.values(entry.files ?? {})) {
      if (!/^[0-9a-f]{64}$/.test(String(f?.sha256)) || !Number.isSafeInteger(f?.size) || f.size < 0) return 'names a file by an invalid hash or size';
    }
    if (this.options.signing) {
      if (envelope.hmac === undefined) return 'is not signed (TLPIPE_REMOTE_KEY is set, so unsigned entries are refused)';
      if (!verify(this.options.signing, envelope.hmac, 'entry', canonicalJson(entry))) return 'has a signature that does not match TLPIPE_REMOTE_KEY (altered, or signed with another key)';
    }
    return entry;
  }

  /** Reads a small object whole, or undefined when absent. A stream broken part-way is retried. */
  private async readSmall(b: RemoteBackend, key: string, limit: number): Promise<Buffer | undefined> {
    return this.withStreamRetries(key, async () => {
      const stream = await b.get(key);
      if (!stream) return undefined;
      const parts: Buffer[] = [];
      let length = 0;
      for await (const chunk of stream) {
        length += (chunk as Buffer).length;
        if (length > limit) {
          stream.destroy();
          throw new RemoteError(`${key} is larger than ${limit} bytes: not a tlpipe object`);
        }
        parts.push(chunk as Buffer);
      }
      return Buffer.concat(parts);
    });
  }

  private async withStreamRetries<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const retries = this.options.streamRetries ?? 2;
    const backoff = this.options.backoffMs ?? 250;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof RemoteError) throw e;
        // A stream that broke part-way (a reset, a server stopped): retry, then give up on the remote.
        if (attempt >= retries) throw new RemoteUnavailable(`transfer of ${key} broke off: ${(e as Error).message}`);
        await sleep(backoff * 2 ** attempt * (0.5 + Math.random()));
      }
    }
  }

  /** Whether the remote holds a usable artifact for this fingerprint (entry checked, objects present). */
  async has(fingerprint: string): Promise<boolean> {
    return this.attempt(
      'looking up an artifact',
      async (b) => {
        const entry = await this.readEntry(b, fingerprint, { quiet: true });
        return Boolean(entry && !entry.machineLocal && (await this.missingObject(b, entry)) === undefined);
      },
      false,
    );
  }

  private async missingObject(b: RemoteBackend, entry: ArtifactEntry): Promise<string | undefined> {
    for (const [name, { sha256, size }] of Object.entries(entry.files)) {
      const info = await b.head(keys.object(sha256, size));
      if (!info || info.size !== size) return name;
    }
    return undefined;
  }

  // ---- pull ----

  /** Fetches the artifact of `fingerprint` into the local store, verified. */
  async pull(fingerprint: string, onProgress?: Progress): Promise<PullResult> {
    const started = performance.now();
    return this.attempt(
      `pulling ${fingerprint.slice(0, 12)}`,
      async (b): Promise<PullResult> => {
        const entry = await this.readEntry(b, fingerprint);
        if (!entry) return { pulled: false, reason: 'not in the remote' };
        if (entry.machineLocal) return { pulled: false, reason: 'machine-local artifact' };
        const needed: [string, { sha256: string; size: number }][] = [];
        for (const [name, f] of Object.entries(entry.files)) {
          if (!(await this.localObjectIntact(f.sha256, f.size))) needed.push([name, f]);
        }
        const total = needed.reduce((n, [, f]) => n + f.size, 0);
        let done = 0;
        for (const [name, f] of needed) {
          const problem = await this.downloadObject(b, f.sha256, f.size, (n) => onProgress?.(done + n, total));
          if (problem) {
            this.warn(
              `The remote ${this.name}'s copy of file "${name}" of stage "${entry.stage}" (${f.sha256.slice(0, 12)}, ${f.size} bytes) ${problem}; it is not used${this.writable ? ' (its entry is removed)' : ''}, the stage is computed here.`,
            );
            if (this.writable) await b.delete([keys.entry(fingerprint), ...(problem === 'is missing' ? [] : [keys.object(f.sha256, f.size)])]);
            return { pulled: false, reason: `remote file "${name}" ${problem}` };
          }
          done += f.size;
          onProgress?.(done, total);
        }
        await this.store.writeAtomic(this.store.entryPath(fingerprint), `${JSON.stringify(entry, null, 1)}\n`);
        return { pulled: true, entry, bytes: total, ms: Math.round(performance.now() - started) };
      },
      { pulled: false, reason: 'the remote cannot be reached' },
    );
  }

  private async localObjectIntact(sha256: string, size: number): Promise<boolean> {
    const file = this.store.objectPath(sha256);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st || st.size !== size) return false;
    return (await hashFile(file).catch(() => '')) === sha256;
  }

  /**
   * Streams one object into the store, hashing as it comes: it enters
   * objects/ only when its size and sha256 match its name. Returns what is
   * wrong with it, or undefined when it is in place.
   */
  private async downloadObject(b: RemoteBackend, sha256: string, size: number, onBytes: (n: number) => void): Promise<string | undefined> {
    const key = keys.object(sha256, size);
    const tmp = path.join(this.store.root, 'tmp', `${process.pid}-pull-${randomBytes(6).toString('hex')}`);
    try {
      const outcome = await this.withStreamRetries(key, async () => {
        const stream = await b.get(key);
        if (!stream) return 'is missing';
        return receive(stream, tmp, size, sha256, onBytes);
      });
      if (outcome) return outcome;
      const target = this.store.objectPath(sha256);
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.chmod(tmp, 0o444);
      await fs.rename(tmp, target);
      return undefined;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  // ---- push ----

  /** Objects first, then the entry: a push stopped at any point leaves no entry naming a missing object. */
  async push(entry: ArtifactEntry, onProgress?: Progress): Promise<PushResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    if (!this.writable) return { pushed: false, bytes: 0, ms: 0, reason: 'the remote is read-only' };
    if (entry.machineLocal) return { pushed: false, bytes: 0, ms: 0, reason: 'it names places on this machine' };
    return this.attempt(
      `pushing the artifact of stage "${entry.stage}"`,
      async (b): Promise<PushResult> => {
        const files = Object.values(entry.files);
        const total = files.reduce((n, f) => n + f.size, 0);
        let bytes = 0;
        let done = 0;
        for (const f of files) {
          const key = keys.object(f.sha256, f.size);
          const there = await b.head(key);
          if (!there || there.size !== f.size) {
            // Uploads of a file body are not retried by the SDK (a stream cannot be replayed): here they are.
            await this.retryingPut(() => b.put(key, { file: this.store.objectPath(f.sha256), size: f.size }, undefined, (n) => onProgress?.(done + n, total)));
            bytes += f.size;
          }
          done += f.size;
          onProgress?.(done, total);
        }
        // One entry stands: another machine's valid entry for this fingerprint is kept.
        const existing = await this.readEntry(b, entry.fingerprint, { quiet: true });
        if (existing && (await this.missingObject(b, existing)) === undefined) return { pushed: false, bytes, ms: elapsed(), reason: 'already in the remote' };
        await b.put(keys.entry(entry.fingerprint), this.envelopeFor(entry));
        return { pushed: true, bytes, ms: elapsed() };
      },
      { pushed: false, bytes: 0, ms: elapsed(), reason: 'the remote cannot be reached' },
    );
  }

  private async retryingPut(put: () => Promise<void>): Promise<void> {
    const retries = this.options.streamRetries ?? 2;
    const backoff = this.options.backoffMs ?? 250;
    for (let attempt = 0; ; attempt++) {
      try {
        return await put();
      } catch (e) {
        if (!(e instanceof RemoteUnavailable) || attempt >= retries) throw e;
        await sleep(backoff * 2 ** attempt * (0.5 + Math.random()));
      }
    }
  }

  async pushRun(record: RunRecord): Promise<void> {
    if (!this.writable) return;
    await this.attempt('pushing the run record', (b) => b.put(keys.run(record.id), Buffer.from(`${JSON.stringify(record)}\n`)), undefined);
  }

  // ---- chunks ----

  /** Chunk files of `scope` in the remote whose payload is not among `have`, verified. */
  async pullChunks(scope: string, have: Set<string>): Promise<Buffer[]> {
    return this.attempt(
      `pulling saved chunks of work`,
      async (b) => {
        const out: Buffer[] = [];
        for (const info of await b.list(keys.chunkPrefix(scope))) {
          const m = /\/([0-9a-f]{64})-(\d+)\.chunk$/.exec(info.key);
          if (!m || have.has(m[1]!)) continue;
          const body = await this.readSmall(b, info.key, Number(m[2]) + SIGNED_CHUNK_MAGIC.length + 64 + 1);
          if (!body) continue;
          const problem = this.chunkProblem(scope, body, m[1]!);
          if (typeof problem === 'string') {
            this.warn(`A saved chunk of work in the remote ${this.name} (${info.key}) ${problem}; it is not used, that part is computed here.`);
            if (this.writable) await b.delete([info.key]);
            continue;
          }
          out.push(problem);
          have.add(m[1]!);
        }
        return out;
      },
      [] as Buffer[],
    );
  }

  private chunkProblem(scope: string, body: Buffer, sha256: string): string | Buffer {
    let chunk = body;
    let signature: string | undefined;
    if (body.subarray(0, SIGNED_CHUNK_MAGIC.length).equals(SIGNED_CHUNK_MAGIC)) {
      signature = body.toString('ascii', SIGNED_CHUNK_MAGIC.length, SIGNED_CHUNK_MAGIC.length + 64);
      chunk = body.subarray(SIGNED_CHUNK_MAGIC.length + 64);
    }
    if (!decodeChunk(chunk) || chunkPayloadHash(chunk) !== sha256) return 'is damaged';
    if (this.options.signing) {
      if (signature === undefined) return 'is not signed (TLPIPE_REMOTE_KEY is set)';
      if (!verify(this.options.signing, signature, 'chunk', scope, chunk)) return 'has a signature that does not match TLPIPE_REMOTE_KEY';
    }
    return chunk;
  }

  /** Shares one committed chunk file (as the local log wrote it). */
  async pushChunk(scope: string, chunk: Buffer): Promise<void> {
    if (!this.writable) return;
    const sha = chunkPayloadHash(chunk);
    if (!sha) return;
    const body = this.options.signing ? Buffer.concat([SIGNED_CHUNK_MAGIC, Buffer.from(sign(this.options.signing, 'chunk', scope, chunk), 'ascii'), chunk]) : chunk;
    await this.attempt('sharing a chunk of work', (b) => b.put(keys.chunk(scope, sha, chunk.length), body), undefined);
  }

  /** The backend itself, for gc (which needs listing and deleting). Throws when unreachable. */
  async raw<T>(what: string, fn: (b: RemoteBackend) => Promise<T>): Promise<T> {
    const strict = new RemoteCache(() => this.backend(), this.store, { ...this.options, strict: true });
    return strict.attempt(what, fn, undefined as T);
  }

  /** Checks an entry text from the remote (gc reads entries to know which objects they keep). */
  parseEntry(text: Buffer, fingerprint: string): ArtifactEntry | undefined {
    const r = this.entryProblem(text, fingerprint);
    return typeof r === 'string' ? undefined : r;
  }

  async readEntryText(b: RemoteBackend, key: string): Promise<Buffer | undefined> {
    return this.readSmall(b, key, MAX_ENTRY_BYTES);
  }
}

/** Writes a stream to `file`, hashing it; returns what is wrong with it, or undefined when it matches. */
async function receive(stream: Readable, file: string, size: number, sha256: string, onBytes: (n: number) => void): Promise<string | undefined> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  let length = 0;
  try {
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      length += buf.length;
      if (length > size) {
        stream.destroy();
        return `has more than its ${size} bytes`;
      }
      hash.update(buf);
      if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
      onBytes(length);
    }
  } finally {
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
  if (length !== size) return `has ${length} bytes instead of ${size} (truncated)`;
  if (hash.digest('hex') !== sha256) return 'does not match its sha256 (altered)';
  return undefined;
}
