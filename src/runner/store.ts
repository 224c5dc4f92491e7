// The local artifact store. Layout under the cache folder:
//   objects/ab/<sha256>     immutable file contents, addressed by their hash
//   artifacts/<fp>.json     one entry per stage fingerprint: its record and files
//   chunks/<scope>/*.chunk  committed chunks of interrupted work
//   runs/<id>.json          run records
//   locks/, tmp/, state/    coordination and scratch
// Every write goes to tmp/ first and is renamed into place, and an entry is
// written only after all its objects exist, so a crash at any moment leaves
// either the old state or the new one. Corrupt entries and objects are
// detected when read, reported, and treated as missing.
import { replaceAtomically } from '../fs/atomic-write.js';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describeFsError, errorMessage, StepFailure, StoreError } from './errors.js';
import { type FingerprintRecord, canonicalJson, fingerprintOf, sha256 } from './fingerprint.js';
import type { Artifact, ChunkLog, Json } from './step.js';

export const STORE_FORMAT = 1;

export interface ArtifactEntry {
  format: number;
  fingerprint: string;
  record: FingerprintRecord;
  stage: string;
  createdAt: string;
  durationMs: number;
  files: { [name: string]: { sha256: string; size: number } };
  value: Json;
  metrics: { [name: string]: Json };
  publish: { file: string; to: string }[];
  chunkScopes: string[];
  /** It names places on this machine: never shared through a remote. */
  machineLocal?: boolean;
  /** sha256 of the entry's canonical JSON without this field: a flipped byte anywhere is detected. */
  checksum?: string;
}

/** The checksum an entry carries: the hash of everything else in it. */
export function entryChecksum(entry: ArtifactEntry): string {
  const { checksum: _checksum, ...rest } = entry;
  return sha256(canonicalJson(rest));
}

export type Verification = 'quick' | 'full';

export type Lookup =
  | { found: true; entry: ArtifactEntry; artifact: Artifact }
  | { found: false; reason: string; corrupt?: boolean };

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class ArtifactStore {
  /** Every warning this store raised (corrupt entries...), for the run record. */
  readonly warnings: string[] = [];
  /**
   * How a full verification hashes an object. The session sets it to its
   * PathHasher's, which skips objects whose stat proves them unchanged since
   * they were last hashed (see path-hasher.ts and docs/reliability.md).
   */
  hashObject: (file: string, stat: Stats) => Promise<string> = (file) => hashFile(file);
  /** Told the hash of each object as it is committed (the session records it in its PathHasher): verifying it later is a stat. */
  rememberObject: (file: string, stat: Stats, sha256: string) => void = () => {};

  private constructor(
    readonly root: string,
    private readonly onWarning?: (message: string) => void,
  ) {}

  /** Opens (creating if needed) the store and clears scratch left by dead processes. */
  static async open(root: string, onWarning?: (message: string) => void): Promise<ArtifactStore> {
    const store = new ArtifactStore(path.resolve(root), onWarning);
    try {
      for (const dir of ['objects', 'artifacts', 'chunks', 'runs', 'locks', 'tmp', 'state']) {
        await fs.mkdir(path.join(store.root, dir), { recursive: true });
      }
      await fs.access(store.root, fs.constants.W_OK);
    } catch (e) {
      throw new StoreError(describeFsError(e, `opening the cache folder ${store.root}`), { cause: e });
    }
    await store.removeDeadScratch();
    return store;
  }

  warn(message: string): void {
    this.warnings.push(message);
    this.onWarning?.(message);
  }

  private async removeDeadScratch(): Promise<void> {
    const tmp = path.join(this.root, 'tmp');
    for (const name of await fs.readdir(tmp).catch(() => [] as string[])) {
      const pid = Number(name.split('-')[0]);
      if (!Number.isInteger(pid) || !isAlive(pid)) await fs.rm(path.join(tmp, name), { recursive: true, force: true });
    }
  }

  /** A fresh scratch folder on the store's file system (so renames are atomic). */
  async scratch(label: string): Promise<string> {
    const dir = path.join(this.root, 'tmp', `${process.pid}-${label}-${randomBytes(4).toString('hex')}`);
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (e) {
      throw new StoreError(describeFsError(e, `creating a scratch folder in ${this.root}`), { cause: e });
    }
    return dir;
  }

  objectPath(sha: string): string {
    return path.join(this.root, 'objects', sha.slice(0, 2), sha);
  }

  entryPath(fingerprint: string): string {
    return path.join(this.root, 'artifacts', `${fingerprint}.json`);
  }

  /** Writes a file atomically: a temp file, flushed, then renamed over the target. */
  async writeAtomic(target: string, data: string | Uint8Array): Promise<void> {
    const tmp = path.join(this.root, 'tmp', `${process.pid}-w-${randomBytes(6).toString('hex')}`);
    try {
      await replaceAtomically(tmp, target, data);
    } catch (e) {
      throw new StoreError(describeFsError(e, `writing ${target}`), { cause: e });
    }
  }

  async readEntry(fingerprint: string): Promise<ArtifactEntry | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.entryPath(fingerprint), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const entry = JSON.parse(text) as ArtifactEntry;
      if (entry.format !== STORE_FORMAT || entry.fingerprint !== fingerprint || fingerprintOf(entry.record) !== fingerprint) {
        throw new Error('its fingerprint does not match its record');
      }
      if (entry.checksum !== entryChecksum(entry)) throw new Error('its checksum does not match its content');
      for (const f of Object.values(entry.files ?? {})) {
        if (!/^[0-9a-f]{64}$/.test(String(f?.sha256))) throw new Error('it names a file by an invalid hash');
      }
      return entry;
    } catch (e) {
      this.warn(`Cached artifact ${fingerprint.slice(0, 12)} is corrupt (${errorMessage(e)}); it was discarded and will be recomputed.`);
      await fs.rm(this.entryPath(fingerprint), { force: true });
      return undefined;
    }
  }

  /**
   * Finds a usable artifact. `quick` checks that every object is present with
   * its size; `full` also re-hashes the contents. A damaged artifact is
   * discarded (its entry removed) and reported as a miss.
   */
  async lookup(fingerprint: string, verification: Verification): Promise<Lookup> {
    const entry = await this.readEntry(fingerprint);
    if (!entry) return { found: false, reason: 'no cached artifact with this fingerprint' };
    for (const [name, { sha256, size }] of Object.entries(entry.files)) {
      const file = this.objectPath(sha256);
      let problem: string | undefined;
      try {
        const st = await fs.stat(file);
        if (st.size !== size) problem = `has ${st.size} bytes instead of ${size}`;
        else if (verification === 'full' && (await this.hashObject(file, st)) !== sha256) problem = 'does not match its hash';
      } catch {
        problem = 'is missing';
      }
      if (problem) {
        this.warn(`Cached file "${name}" of stage "${entry.stage}" ${problem}; the artifact was discarded and will be recomputed.`);
        await fs.rm(this.entryPath(fingerprint), { force: true });
        if (problem !== 'is missing') await fs.rm(file, { force: true });
        return { found: false, reason: `cached file "${name}" ${problem}`, corrupt: true };
      }
    }
    return { found: true, entry, artifact: this.artifactView(entry) };
  }

  artifactView(entry: ArtifactEntry): Artifact {
    const files = entry.files;
    return {
      stage: entry.stage,
      fingerprint: entry.fingerprint,
      value: entry.value,
      metrics: entry.metrics,
      file: (name: string) => {
        const f = files[name];
        if (!f) throw new Error(`artifact of stage "${entry.stage}" has no file "${name}" (it has: ${Object.keys(files).join(', ') || 'none'})`);
        return this.objectPath(f.sha256);
      },
      files: () => Object.keys(files).sort(),
    };
  }

  /** Moves every file of `dir` into objects/ and commits the entry: the stage's commit point. */
  async commit(dir: string, entry: Omit<ArtifactEntry, 'files' | 'format'>): Promise<ArtifactEntry> {
    const files: ArtifactEntry['files'] = {};
    try {
      for (const rel of await listFiles(dir)) {
        const src = path.join(dir, rel);
        const sha = await hashFile(src);
        const { size } = await fs.stat(src);
        const target = this.objectPath(sha);
        // An object already there is reused only if it is intact: a damaged
        // one must not be handed to this artifact (it is replaced instead).
        // Verified as a lookup verifies (stat-trusted), not read once more.
        const present = await fs.stat(target).catch(() => undefined);
        if (present && (await this.hashObject(target, present).catch(() => '')) === sha) await fs.rm(src);
        else {
          await fs.mkdir(path.dirname(target), { recursive: true });
          await fs.chmod(src, 0o444);
          await fs.rename(src, target);
          this.rememberObject(target, await fs.stat(target), sha);
        }
        files[rel.split(path.sep).join('/')] = { sha256: sha, size };
      }
      const full: ArtifactEntry = { format: STORE_FORMAT, ...entry, files };
      // Over the JSON form (NaN becomes null there), as readEntry will see it.
      full.checksum = entryChecksum(JSON.parse(JSON.stringify(full)) as ArtifactEntry);
      await this.writeAtomic(this.entryPath(entry.fingerprint), `${JSON.stringify(full, null, 1)}\n`);
      return full;
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError(describeFsError(e, `saving the artifact of stage "${entry.stage}"`), { cause: e });
    }
  }

  chunkLog(scope: string): ChunkLog {
    // A scope is a folder name under chunks/: never a path that leaves it.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(scope)) {
      throw new StepFailure(`chunk scope "${scope}" is not a plain name (letters, digits, ".", "_" and "-", at most 128)`);
    }
    return new FileChunkLog(this, scope);
  }

  async listEntries(): Promise<string[]> {
    const names = await fs.readdir(path.join(this.root, 'artifacts')).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  }

  /**
   * Waits for and takes an exclusive lock. A lock whose owner died is taken
   * over, so a killed run never blocks the next one.
   */
  async lock(name: string, signal?: AbortSignal, onWait?: () => void): Promise<() => Promise<void>> {
    const file = path.join(this.root, 'locks', `${name}.lock`);
    let waited = false;
    for (;;) {
      signal?.throwIfAborted();
      try {
        const handle = await fs.open(file, 'wx');
        try {
          await handle.writeFile(String(process.pid));
        } catch (e) {
          // A lock without its owner's pid would never be taken over: do not leave one.
          await handle.close().catch(() => undefined);
          await fs.rm(file, { force: true });
          throw e;
        }
        await handle.close();
        return async () => {
          await fs.rm(file, { force: true });
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new StoreError(describeFsError(e, `taking the lock ${file}`), { cause: e });
        }
      }
      const text = await fs.readFile(file, 'utf8').catch(() => undefined);
      const owner = Number(text);
      // No pid in it: its owner died between creating it and writing its pid (or
      // wrote it a moment ago). Stale once it has stayed so for a few seconds.
      const ownerless =
        text !== undefined && !(Number.isInteger(owner) && owner > 0) && Date.now() - ((await fs.stat(file).catch(() => undefined))?.mtimeMs ?? Date.now()) > 5000;
      if ((Number.isInteger(owner) && owner > 0 && !isAlive(owner)) || ownerless) {
        // Take over a dead owner's lock: rename is atomic, so only one waiter wins.
        const stale = `${file}.stale-${process.pid}`;
        await fs.rename(file, stale).then(
          () => fs.rm(stale, { force: true }),
          () => undefined,
        );
        continue;
      }
      if (!waited) {
        waited = true;
        onWait?.();
      }
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 50));
    }
  }

  /** Owners of run locks still alive: garbage collection must not run beside them. */
  async liveRunLocks(): Promise<string[]> {
    const dir = path.join(this.root, 'locks');
    const live: string[] = [];
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith('run-') || !name.endsWith('.lock')) continue;
      const pid = Number(await fs.readFile(path.join(dir, name), 'utf8').catch(() => ''));
      if (pid && isAlive(pid) && pid !== process.pid) live.push(name.slice(4, -5));
    }
    return live;
  }
}

export async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await fs.readdir(path.join(dir, prefix), { withFileTypes: true });
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const rel = prefix ? path.join(prefix, e.name) : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

const CHUNK_MAGIC = 'TLCHUNK1';

/** Chunks are files named by time and writer, each carrying its own checksum. */
class FileChunkLog implements ChunkLog {
  private seq = 0;
  constructor(
    private readonly store: ArtifactStore,
    readonly id: string,
  ) {}

  private get dir(): string {
    return path.join(this.store.root, 'chunks', this.id);
  }

  async readAll(): Promise<Buffer[]> {
    const names = (await fs.readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.chunk')).sort();
    const out: Buffer[] = [];
    for (const name of names) {
      const file = path.join(this.dir, name);
      const data = await fs.readFile(file).catch(() => undefined);
      const payload = data && decodeChunk(data);
      if (payload) out.push(payload);
      else {
        this.store.warn(`A saved chunk of work (${name}) is corrupt; it was discarded and that part will be recomputed.`);
        await fs.rm(file, { force: true });
      }
    }
    return out;
  }

  async append(data: Uint8Array): Promise<void> {
    const name = `${Date.now().toString().padStart(15, '0')}-${process.pid}-${String(this.seq++).padStart(6, '0')}.chunk`;
    await this.store.writeAtomic(path.join(this.dir, name), encodeChunk(data));
  }
}

/** A chunk file: magic, sha256 of the payload, its length, the payload. */
export function encodeChunk(data: Uint8Array): Buffer {
  const header = Buffer.alloc(CHUNK_HEADER_LENGTH);
  header.write(CHUNK_MAGIC, 0, 'ascii');
  createHash('sha256').update(data).digest().copy(header, CHUNK_MAGIC.length);
  header.writeBigUInt64LE(BigInt(data.length), CHUNK_MAGIC.length + 32);
  return Buffer.concat([header, data]);
}

export const CHUNK_HEADER_LENGTH = CHUNK_MAGIC.length + 32 + 8;

/** The sha256 a chunk file's header claims for its payload (hex), read without checking it. */
export function chunkPayloadHash(data: Buffer): string | undefined {
  if (data.length < CHUNK_HEADER_LENGTH || data.toString('ascii', 0, CHUNK_MAGIC.length) !== CHUNK_MAGIC) return undefined;
  return data.subarray(CHUNK_MAGIC.length, CHUNK_MAGIC.length + 32).toString('hex');
}

/** The payload of an intact chunk file, or undefined when it is damaged. */
export function decodeChunk(data: Buffer): Buffer | undefined {
  const headerLength = CHUNK_MAGIC.length + 32 + 8;
  if (data.length < headerLength || data.toString('ascii', 0, CHUNK_MAGIC.length) !== CHUNK_MAGIC) return undefined;
  const length = Number(data.readBigUInt64LE(CHUNK_MAGIC.length + 32));
  const payload = data.subarray(headerLength);
  if (payload.length !== length) return undefined;
  const expected = data.subarray(CHUNK_MAGIC.length, CHUNK_MAGIC.length + 32);
  if (!createHash('sha256').update(payload).digest().equals(expected)) return undefined;
  return payload;
}
