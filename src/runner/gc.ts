// Garbage collection: removes artifacts, objects and chunk logs that no kept
// run references. Runs refuse to overlap with it (see the run locks).
import fs from 'node:fs/promises';
import path from 'node:path';
import { StoreError } from './errors.js';
import { RunRecords } from './runs.js';
import type { ArtifactStore } from './store.js';

export interface GcResult {
  keptRuns: number;
  removedRuns: number;
  removedArtifacts: number;
  removedObjects: number;
  removedChunkScopes: number;
  freedBytes: number;
}

async function sizeOf(p: string): Promise<number> {
  const st = await fs.lstat(p).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of await fs.readdir(p)) total += await sizeOf(path.join(p, name));
  return total;
}

export async function collectGarbage(store: ArtifactStore, options: { keepLast?: number; dryRun?: boolean } = {}): Promise<GcResult> {
  const live = await store.liveRunLocks();
  if (live.length) throw new StoreError(`A run is in progress on this cache (${live.join(', ')}); run gc when it has finished.`);
  const unlock = await store.lock('gc');
  try {
    const records = new RunRecords(store);
    const runs = await records.list();
    const keep = options.keepLast === undefined ? runs : runs.slice(Math.max(0, runs.length - options.keepLast));
    const dropRuns = runs.filter((r) => !keep.includes(r));
    const result: GcResult = { keptRuns: keep.length, removedRuns: 0, removedArtifacts: 0, removedObjects: 0, removedChunkScopes: 0, freedBytes: 0 };
    const remove = async (p: string) => {
      result.freedBytes += await sizeOf(p);
      if (!options.dryRun) await fs.rm(p, { recursive: true, force: true });
    };

    for (const r of dropRuns) {
      await remove(path.join(store.root, 'runs', `${r.id}.json`));
      result.removedRuns++;
    }
    const keptFingerprints = new Set(keep.flatMap((r) => r.stages.map((s) => s.fingerprint)));
    const keptObjects = new Set<string>();
    const keptScopes = new Set<string>();
    for (const fp of await store.listEntries()) {
      const entry = keptFingerprints.has(fp) ? await store.readEntry(fp) : undefined;
      if (!entry) {
        await remove(store.entryPath(fp));
        result.removedArtifacts++;
        continue;
      }
      for (const f of Object.values(entry.files)) keptObjects.add(f.sha256);
      for (const s of entry.chunkScopes) keptScopes.add(s);
      // An interrupted stage's own chunks are kept while a run names its fingerprint.
      keptScopes.add(fp);
    }
    for (const r of keep) for (const s of r.stages) keptScopes.add(s.fingerprint);

    const objectsDir = path.join(store.root, 'objects');
    for (const prefix of await fs.readdir(objectsDir).catch(() => [] as string[])) {
      for (const sha of await fs.readdir(path.join(objectsDir, prefix)).catch(() => [] as string[])) {
        if (!keptObjects.has(sha)) {
          await remove(path.join(objectsDir, prefix, sha));
          result.removedObjects++;
        }
      }
    }
    const chunksDir = path.join(store.root, 'chunks');
    for (const scope of await fs.readdir(chunksDir).catch(() => [] as string[])) {
      if (!keptScopes.has(scope)) {
        await remove(path.join(chunksDir, scope));
        result.removedChunkScopes++;
      }
    }
    return result;
  } finally {
    await unlock();
  }
}
