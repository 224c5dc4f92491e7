// The interface every remote backend implements, and the layout tlpipe keeps
// in it. A backend is a flat key → bytes store (a folder, an S3 bucket); it
// knows nothing of artifacts. What goes in it (remote/cache.ts):
//
//   cas/<ab>/<sha256>-<size>       file contents, named by their sha256 and size;
//                                  immutable, verified as they stream in
//   ac/<fingerprint>.json          one entry per stage fingerprint: the artifact's
//                                  record, files and value (optionally HMAC-signed),
//                                  written only after every object it names
//   chunks/<scope>/<sha256>-<size>.chunk
//                                  committed chunks of long work (features), so
//                                  a half-finished stage on one machine is
//                                  finished, not redone, on another
//   runs/<id>.json                 run records pushed by runs: what gc keeps
//   jobs/<job id>.result           results of the queue's chunk jobs (run --queue,
//                                  tlpipe worker); transient: once a run accepted
//                                  one, its rows are in the run's chunks/ above
//
// Contract (what the transfer layer relies on):
// - put() is all or nothing: a reader sees the old object, the new one, or
//   none, never a partial one (S3 PUT is atomic; the folder backend writes a
//   temp file and renames it).
// - get() returns undefined for a missing key; every other failure throws.
//   The stream may fail part-way (a server stopped): callers verify size and
//   hash, so a short or altered stream is detected, never kept.
// - Failures that mean "the remote cannot be reached" (refused, timed out,
//   DNS, 5xx after the retries) are thrown as RemoteUnavailable, so a run can
//   go on without the remote; anything else (403, a bad bucket) as RemoteError.
import type { Readable } from 'node:stream';

export interface RemoteObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

export interface RemoteBackend {
  /** The remote's URL, for messages (never with credentials). */
  readonly url: string;
  /** The object's bytes as a stream, or undefined when there is no such key. */
  get(key: string, signal?: AbortSignal): Promise<Readable | undefined>;
  /** The object's size and time, or undefined when there is no such key. */
  head(key: string, signal?: AbortSignal): Promise<RemoteObjectInfo | undefined>;
  /** Writes a whole object from bytes or a local file (of `size` bytes); `onBytes` hears how much has gone. */
  put(key: string, body: Uint8Array | { file: string; size: number }, signal?: AbortSignal, onBytes?: (sent: number) => void): Promise<void>;
  /** Every object under a key prefix. */
  list(prefix: string, signal?: AbortSignal): Promise<RemoteObjectInfo[]>;
  /** Deletes objects; a missing one is not an error. */
  delete(keys: string[], signal?: AbortSignal): Promise<void>;
  /** Releases connections. */
  close(): void;
}

/** The remote answered, but not as asked (permission, a missing bucket...). */
export class RemoteError extends Error {}

/** The remote cannot be reached now (network, timeouts, the server is down). */
export class RemoteUnavailable extends RemoteError {}

export const keys = {
  object: (sha256: string, size: number) => `cas/${sha256.slice(0, 2)}/${sha256}-${size}`,
  entry: (fingerprint: string) => `ac/${fingerprint}.json`,
  chunkPrefix: (scope: string) => `chunks/${scope}/`,
  chunk: (scope: string, sha256: string, size: number) => `chunks/${scope}/${sha256}-${size}.chunk`,
  run: (id: string) => `runs/${id}.json`,
  jobResult: (jobId: string) => `jobs/${jobId}.result`,
};
