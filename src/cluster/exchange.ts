// Where workers and runs exchange bytes: the remote cache's own backend
// (remote/backend.ts: a folder or an S3 bucket, a named remote or a URL).
// A chunk job's result goes under jobs/<job id>.result; the model a job
// names is the content-addressed object cas/<ab>/<sha256>-<size>, the same
// object the freeze stage's remote entry names. Redis only schedules; what is
// here is the truth, so every reader verifies what it gets (feature-job.ts),
// and with TLPIPE_REMOTE_KEY every result carries an HMAC that a run checks
// before it looks further.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { keys, type RemoteBackend, RemoteError } from '../remote/backend.js';
import type { ResolvedRemote } from '../remote/config.js';
import { openBackend } from '../remote/open.js';
import { type SigningKey, sign, signingKeyFrom, verify } from '../remote/signing.js';

/** Results are a chunk's vectors: far below this. */
const MAX_RESULT_BYTES = 1 << 30;
const SIGNED_MAGIC = Buffer.from('TLSIG1', 'ascii');

export type StoredResult = { ok: true; bytes: Buffer } | { ok: false; problem: string };

export class Exchange {
  #backend?: Promise<RemoteBackend>;

  constructor(
    private readonly open: () => Promise<RemoteBackend>,
    /** How messages name the remote (its configured name, or its URL). */
    readonly name: string,
    private readonly signing?: SigningKey,
  ) {}

  get signed(): boolean {
    return this.signing !== undefined;
  }

  private backend(): Promise<RemoteBackend> {
    this.#backend ??= this.open();
    return this.#backend;
  }

  close(): void {
    void this.#backend?.then((b) => b.close(), () => undefined);
  }

  /** Stores a job's result (signed with a key); a second put of the same job is harmless. */
  async putResult(jobId: string, bytes: Buffer): Promise<void> {
    const body = this.signing ? Buffer.concat([SIGNED_MAGIC, Buffer.from(sign(this.signing, 'result', jobId, bytes), 'ascii'), bytes]) : bytes;
    await (await this.backend()).put(keys.jobResult(jobId), body);
  }

  /** The ids of the jobs whose results the remote holds (one listing). */
  async resultIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const o of await (await this.backend()).list('jobs/')) {
      const m = /^jobs\/(.+)\.result$/.exec(o.key);
      if (m) ids.add(m[1]!);
    }
    return ids;
  }

  /** The job's result, undefined when there is none; with a key, only a validly signed one. */
  async getResult(jobId: string): Promise<StoredResult | undefined> {
    const body = await this.readWhole(keys.jobResult(jobId));
    if (!body) return undefined;
    let bytes = body;
    let signature: string | undefined;
    if (body.subarray(0, SIGNED_MAGIC.length).equals(SIGNED_MAGIC)) {
      signature = body.toString('ascii', SIGNED_MAGIC.length, SIGNED_MAGIC.length + 64);
      bytes = body.subarray(SIGNED_MAGIC.length + 64);
    }
    if (this.signing) {
      if (signature === undefined) return { ok: false, problem: 'it is not signed (TLPIPE_REMOTE_KEY is set here; give the workers the same key)' };
      if (!verify(this.signing, signature, 'result', jobId, bytes)) return { ok: false, problem: 'its signature does not match TLPIPE_REMOTE_KEY (altered, or the worker has another key)' };
    }
    return { ok: true, bytes };
  }

  private async readWhole(key: string): Promise<Buffer | undefined> {
    const stream = await (await this.backend()).get(key);
    if (!stream) return undefined;
    const parts: Buffer[] = [];
    let length = 0;
    for await (const chunk of stream) {
      length += (chunk as Buffer).length;
      if (length > MAX_RESULT_BYTES) {
        stream.destroy();
        throw new RemoteError(`${key} is larger than ${MAX_RESULT_BYTES} bytes: not a tlpipe result`);
      }
      parts.push(chunk as Buffer);
    }
    return Buffer.concat(parts);
  }

  /** Puts a model file where workers find it, unless it is there already. */
  async offerModel(model: { sha256: string; size: number }, file: string): Promise<void> {
    const b = await this.backend();
    const key = keys.object(model.sha256, model.size);
    const there = await b.head(key);
    if (there?.size === model.size) return;
    await b.put(key, { file, size: model.size });
  }

  /**
   * Fetches a model into `target`, verified as it streams in (size and
   * sha256); returns what is wrong instead when it is absent or damaged.
   */
  async fetchModel(model: { sha256: string; size: number }, target: string): Promise<string | undefined> {
    const stream = await (await this.backend()).get(keys.object(model.sha256, model.size));
    if (!stream) return `model ${model.sha256.slice(0, 12)}… is not in the remote ${this.name} yet`;
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    const hash = createHash('sha256');
    let length = 0;
    try {
      const out = createWriteStream(tmp);
      try {
        for await (const chunk of stream) {
          length += (chunk as Buffer).length;
          hash.update(chunk as Buffer);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        }
      } finally {
        await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
      }
      const got = hash.digest('hex');
      if (got !== model.sha256 || length !== model.size) {
        return `the remote's copy of model ${model.sha256.slice(0, 12)}… is damaged (sha256 ${got.slice(0, 12)}…, ${length} bytes); not used`;
      }
      await fs.rename(tmp, target);
      return undefined;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }
}

/** The exchange in a resolved remote (a name from tlpipe.json, or a URL), signing with TLPIPE_REMOTE_KEY when set. */
export function openExchange(remote: ResolvedRemote, env = process.env): Exchange {
  return new Exchange(() => openBackend(remote.location, env), remote.name, signingKeyFrom(env));
}
