// Where workers and runs exchange bytes: a chunk's result under its job id,
// a model under its sha256. Redis only schedules; what is here is the truth,
// so every reader verifies what it gets (see feature-job.ts) and every write
// is all-or-nothing (temp file, then rename), so a writer killed at any moment
// leaves nothing half-written and two writers of one key both succeed.
import { replaceAtomically } from '../fs/atomic-write.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../runner/errors.js';

export interface Exchange {
  /** The URL, for messages. */
  readonly url: string;
  /** Stores `bytes` under `key` (a plain name: letters, digits, '-', '/'); idempotent. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** The bytes under `key`, or undefined when there are none. */
  get(key: string): Promise<Buffer | undefined>;
  has(key: string): Promise<boolean>;
}

const KEY = /^[a-z0-9][a-z0-9-]*(\/[a-z0-9][a-z0-9.-]*)*$/;

/** A folder (a local disk, an NFS or SMB mount): `file:///abs/path`. */
export class FolderExchange implements Exchange {
  constructor(
    readonly root: string,
    readonly url = `file://${root}`,
  ) {}

  private file(key: string): string {
    if (!KEY.test(key)) throw new Error(`invalid exchange key "${key}"`);
    return path.join(this.root, 'cluster', ...key.split('/'));
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const target = this.file(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    // Host, pid and randomness: unique across the machines sharing the folder.
    const tmp = `${target}.tmp-${os.hostname()}-${process.pid}-${randomBytes(6).toString('hex')}`;
    await replaceAtomically(tmp, target, bytes);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.file(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async has(key: string): Promise<boolean> {
    return fs.access(this.file(key)).then(
      () => true,
      () => false,
    );
  }
}

/** Opens a remote by URL. */
export function openExchange(url: string): Exchange {
  if (url.startsWith('file://')) {
    const root = fileURLToPath(url);
    return new FolderExchange(root, url);
  }
  if (path.isAbsolute(url)) return new FolderExchange(url);
  throw new UsageError(`--remote "${url}" is not a remote this command can use: give file:///absolute/path (a folder every machine can reach).`);
}
