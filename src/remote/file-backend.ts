// A remote in a folder: a shared mount (NFS, SMB) or a disk. Objects are files
// under the folder, written to its tmp/ and renamed into place, so a reader on
// another machine never sees half of one.
import { replaceAtomically } from '../fs/atomic-write.js';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { type RemoteBackend, type RemoteObjectInfo, RemoteError, RemoteUnavailable } from './backend.js';

export class FileBackend implements RemoteBackend {
  constructor(
    readonly url: string,
    private readonly root: string,
  ) {}

  private file(key: string): string {
    // Keys are built by tlpipe (keys.* in backend.ts); never let one leave the folder.
    const full = path.join(this.root, ...key.split('/'));
    if (!full.startsWith(this.root + path.sep)) throw new RemoteError(`invalid remote key ${key}`);
    return full;
  }

  private async rootThere(): Promise<void> {
    const st = await fs.stat(this.root).catch(() => undefined);
    if (st?.isDirectory()) return;
    // The share may not be mounted: create the folder only inside an existing parent.
    const parent = await fs.stat(path.dirname(this.root)).catch(() => undefined);
    if (!parent?.isDirectory()) throw new RemoteUnavailable(`the folder ${this.root} does not exist (is the share mounted?)`);
    await fs.mkdir(this.root, { recursive: true }).catch((e) => {
      throw this.failure(e, 'creating the remote folder');
    });
  }

  private failure(e: unknown, what: string): Error {
    const code = (e as NodeJS.ErrnoException).code;
    const msg = `${what} in ${this.root}: ${(e as Error).message}`;
    // A share that went away, hung or is read-only: the remote is not usable now.
    if (['EIO', 'ETIMEDOUT', 'ESTALE', 'ENOTCONN', 'EHOSTDOWN', 'ENODEV'].includes(String(code))) return new RemoteUnavailable(msg);
    return new RemoteError(msg);
  }

  async get(key: string): Promise<Readable | undefined> {
    const file = this.file(key);
    try {
      const stream = createReadStream(file);
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', reject);
      });
      return stream;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.rootThere();
        return undefined;
      }
      throw this.failure(e, `reading ${key}`);
    }
  }

  async head(key: string): Promise<RemoteObjectInfo | undefined> {
    try {
      const st = await fs.stat(this.file(key));
      return { key, size: st.size, modified: st.mtime };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.rootThere();
        return undefined;
      }
      throw this.failure(e, `reading ${key}`);
    }
  }

  async put(key: string, body: Uint8Array | { file: string; size: number }): Promise<void> {
    await this.rootThere();
    const target = this.file(key);
    const tmpDir = path.join(this.root, 'tmp');
    const tmp = path.join(tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await fs.mkdir(tmpDir, { recursive: true });
      if (!(body instanceof Uint8Array)) await fs.copyFile(body.file, tmp);
      await replaceAtomically(tmp, target, body instanceof Uint8Array ? body : undefined);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw this.failure(e, `writing ${key}`);
    }
  }

  async list(prefix: string): Promise<RemoteObjectInfo[]> {
    await this.rootThere();
    const out: RemoteObjectInfo[] = [];
    const walk = async (dir: string, rel: string) => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return [];
        throw this.failure(e, `listing ${rel || '/'}`);
      });
      for (const e of entries) {
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), key);
        else if (e.isFile()) {
          const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
          if (st) out.push({ key, size: st.size, modified: st.mtime });
        }
      }
    };
    const base = prefix.replace(/\/+$/, '');
    await walk(base ? this.file(base) : this.root, base);
    return out.filter((o) => o.key.startsWith(prefix));
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) {
      await fs.rm(this.file(key), { force: true }).catch((e) => {
        throw this.failure(e, `deleting ${key}`);
      });
    }
  }

  close(): void {}
}
