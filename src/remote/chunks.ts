// Committed chunks of long work, shared through the remote: a features stage
// that another machine half-finished (killed, or still running) pulls the
// chunks that machine committed and computes only the rest; each chunk this
// machine commits is pushed behind the work, in order. Chunks are named by
// their payload's sha256 and verified (and signature-checked with a key) by
// RemoteCache before the local log sees them.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ChunkLog } from '../runner/step.js';
import { type ArtifactStore, CHUNK_HEADER_LENGTH, chunkPayloadHash, encodeChunk } from '../runner/store.js';
import type { RemoteCache } from './cache.js';

export class SharedChunkLog implements ChunkLog {
  private pushes: Promise<void> = Promise.resolve();

  constructor(
    private readonly local: ChunkLog,
    private readonly remote: RemoteCache,
    private readonly store: ArtifactStore,
  ) {}

  get id(): string {
    return this.local.id;
  }

  private get dir(): string {
    return path.join(this.store.root, 'chunks', this.local.id);
  }

  async readAll(): Promise<Buffer[]> {
    const have = await localPayloadHashes(this.dir);
    const pulled = await this.remote.pullChunks(this.local.id, have);
    for (const [i, chunk] of pulled.entries()) {
      const name = `${Date.now().toString().padStart(15, '0')}-remote-${String(i).padStart(6, '0')}-${chunkPayloadHash(chunk)!.slice(0, 16)}.chunk`;
      await this.store.writeAtomic(path.join(this.dir, name), chunk);
    }
    return this.local.readAll();
  }

  async append(data: Uint8Array): Promise<void> {
    await this.local.append(data);
    const file = encodeChunk(data);
    // Behind the work, one at a time; a failed push only warns (RemoteCache).
    this.pushes = this.pushes.then(() => this.remote.pushChunk(this.local.id, file));
  }

  /** Waits for the chunk pushes started so far. */
  flush(): Promise<void> {
    return this.pushes;
  }
}

/** The payload hashes of the chunks already in a local log (read from their headers). */
async function localPayloadHashes(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.chunk')) continue;
    const handle = await fs.open(path.join(dir, name), 'r').catch(() => undefined);
    if (!handle) continue;
    try {
      const header = Buffer.alloc(CHUNK_HEADER_LENGTH);
      const { bytesRead } = await handle.read(header, 0, header.length, 0);
      const sha = chunkPayloadHash(header.subarray(0, bytesRead));
      if (sha) out.add(sha);
    } finally {
      await handle.close();
    }
  }
  return out;
}
