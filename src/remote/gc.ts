// Garbage collection of a remote: the entries no kept run record names go
// first, then the objects and chunk logs no remaining entry needs, so at no
// moment does an entry name a deleted object. Objects, chunks and entries
// younger than a grace period are kept whatever names them: a push in
// progress uploads its objects before the entry that will name them.
// What the queue leaves (run --queue, tlpipe worker) is collected too: job
// results past the grace period, and the models workers fetched, which are
// objects in cas/ like any other (kept while the freeze stage's entry names them).
import type { RunRecord } from '../runner/runs.js';
import { keys, type RemoteBackend, type RemoteObjectInfo } from './backend.js';
import type { RemoteCache } from './cache.js';

export interface RemoteGcOptions {
  /** Keep the entries of the newest N run records in the remote (default: all). */
  keepLast?: number;
  dryRun?: boolean;
  /** Anything younger than this is kept (ms). */
  graceMs: number;
  now?: number;
}

export interface RemoteGcResult {
  keptRuns: number;
  removedRuns: number;
  removedEntries: number;
  keptEntries: number;
  removedObjects: number;
  removedChunks: number;
  /** Results of the queue's chunk jobs (jobs/), older than the grace period. */
  removedJobResults: number;
  freedBytes: number;
}

export async function collectRemoteGarbage(remote: RemoteCache, options: RemoteGcOptions): Promise<RemoteGcResult> {
  return remote.raw('collecting garbage', async (b) => {
    const now = options.now ?? Date.now();
    const young = (o: RemoteObjectInfo) => now - o.modified.getTime() < options.graceMs;
    const result: RemoteGcResult = { keptRuns: 0, removedRuns: 0, removedEntries: 0, keptEntries: 0, removedObjects: 0, removedChunks: 0, removedJobResults: 0, freedBytes: 0 };
    const remove = async (objects: RemoteObjectInfo[]) => {
      for (const o of objects) result.freedBytes += o.size;
      if (!options.dryRun && objects.length) await b.delete(objects.map((o) => o.key));
    };

    const runObjects = (await b.list('runs/')).sort((x, y) => (x.key < y.key ? -1 : 1));
    const runs: { info: RemoteObjectInfo; record?: RunRecord }[] = [];
    for (const info of runObjects) {
      const text = await remote.readEntryText(b, info.key);
      let record: RunRecord | undefined;
      try {
        record = text ? (JSON.parse(text.toString('utf8')) as RunRecord) : undefined;
        if (!Array.isArray(record?.stages)) record = undefined;
      } catch {
        record = undefined;
      }
      runs.push({ info, record });
    }
    // Newest last by start time, as the local store orders runs: ids only resolve seconds.
    const readable = runs
      .filter((r) => r.record)
      .sort((x, y) => String(x.record!.startedAt).localeCompare(String(y.record!.startedAt)) || (x.info.key < y.info.key ? -1 : 1));
    const kept = options.keepLast === undefined ? readable : readable.slice(Math.max(0, readable.length - options.keepLast));
    const dropped = runs.filter((r) => !kept.includes(r) && !(r.record === undefined && young(r.info)));
    result.keptRuns = kept.length;
    const keptFingerprints = new Set(kept.flatMap((r) => r.record!.stages.map((s) => s.fingerprint)));

    // 1. Entries: those no kept run names, unless young.
    const keptObjects = new Set<string>();
    const keptScopes = new Set<string>(keptFingerprints);
    const doomedEntries: RemoteObjectInfo[] = [];
    for (const info of await b.list('ac/')) {
      const fp = /^ac\/([0-9a-f]{64})\.json$/.exec(info.key)?.[1];
      const text = fp ? await remote.readEntryText(b, info.key) : undefined;
      const entry = fp && text ? remote.parseEntry(text, fp) : undefined;
      // Kept by name: an entry a kept run names stays even if this machine cannot verify it (another key).
      const keep = young(info) || (fp !== undefined && keptFingerprints.has(fp));
      if (!keep) {
        doomedEntries.push(info);
        continue;
      }
      result.keptEntries++;
      if (entry) {
        for (const f of Object.values(entry.files)) keptObjects.add(keys.object(f.sha256, f.size));
        for (const s of entry.chunkScopes) keptScopes.add(s);
        keptScopes.add(entry.fingerprint);
      } else if (text && fp) {
        // Young but unreadable to this tlpipe (another key, another version): keep what it may name.
        keepNamedObjects(text, keptObjects);
      }
    }
    await remove(doomedEntries);
    result.removedEntries = doomedEntries.length;
    await remove(dropped.map((r) => r.info));
    result.removedRuns = dropped.length;

    // 2. Objects and chunks no remaining entry needs.
    const doomedObjects = (await b.list('cas/')).filter((o) => !keptObjects.has(o.key) && !young(o));
    await remove(doomedObjects);
    result.removedObjects = doomedObjects.length;
    const doomedChunks = (await b.list('chunks/')).filter((o) => !keptScopes.has(o.key.split('/')[1] ?? '') && !young(o));
    await remove(doomedChunks);
    result.removedChunks = doomedChunks.length;
    // 3. The queue's job results: a run takes each one as it appears and commits its rows to
    // the stage's chunks (above), so past the grace period none is still waited for; one
    // that was never taken (its run died) costs a recomputation at most, never a wrong result.
    const doomedResults = (await b.list('jobs/')).filter((o) => !young(o));
    await remove(doomedResults);
    result.removedJobResults = doomedResults.length;
    // Temp files of writers killed mid-put (folder remotes only).
    await remove((await b.list('tmp/')).filter((o) => !young(o)));
    return result;
  });
}

/** Object keys an entry text names, read loosely (for entries kept but not verifiable here). */
function keepNamedObjects(text: Buffer, into: Set<string>): void {
  try {
    const files = (JSON.parse(text.toString('utf8')) as { entry?: { files?: Record<string, { sha256: string; size: number }> } }).entry?.files ?? {};
    for (const f of Object.values(files)) if (f && typeof f.sha256 === 'string') into.add(keys.object(f.sha256, Number(f.size)));
  } catch {
    // Not JSON: it names nothing.
  }
}

export type { RemoteBackend };
