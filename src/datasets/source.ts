// A dataset that can fetch itself: an archive's URL, its size and sha256.
// The archive is kept in the downloads folder; when no sha256 is published,
// the first download's is recorded beside it and every later use is checked
// against it, so a file that changed upstream or on disk is noticed.
import { existsSync } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { download, DownloadError, sha256OfFile } from './download.js';
import { extractZip } from './extract.js';

export interface DatasetSource {
  url: string;
  /** Size in bytes, as published. */
  size?: number;
  /** sha256 (hex), as published; without it the first download's is recorded. */
  sha256?: string;
}

interface SourceRecord {
  url: string;
  size: number;
  sha256: string;
  recordedAt: string;
}

export function downloadsDir(env: Record<string, string | undefined> = process.env): string {
  if (env.TLPIPE_DOWNLOADS) return path.resolve(env.TLPIPE_DOWNLOADS);
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'tlpipe', 'downloads');
}

export function archiveName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '') || 'dataset.zip';
  return name.replace(/[^\w.-]+/g, '_');
}

export interface FetchOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number | undefined) => void;
  say?: (line: string) => void;
  env?: Record<string, string | undefined>;
}

async function readRecord(file: string, url: string): Promise<SourceRecord | null> {
  try {
    const record = JSON.parse(await readFile(file, 'utf8')) as SourceRecord;
    return record.url === url && /^[0-9a-f]{64}$/.test(record.sha256) ? record : null;
  } catch {
    return null;
  }
}

/** The archive on disk, downloaded if needed, verified against the published or recorded sha256. */
export async function fetchArchive(source: DatasetSource, options: FetchOptions = {}): Promise<string> {
  const dir = downloadsDir(options.env);
  const archive = path.join(dir, archiveName(source.url));
  const recordFile = `${archive}.sha256.json`;
  const record = await readRecord(recordFile, source.url);
  const expected = source.sha256?.toLowerCase() ?? record?.sha256;
  const say = options.say ?? (() => {});

  if (existsSync(archive)) {
    const actual = await sha256OfFile(archive, options.signal);
    if (expected && actual !== expected) {
      const moved = `${archive}.mismatch`;
      await rename(archive, moved);
      throw new DownloadError(
        `${archive} has sha256 ${actual}, not the ${source.sha256 ? 'published' : `recorded (${record!.recordedAt})`} ${expected}: ` +
          `it was moved to ${moved}. Run again to download it afresh${source.sha256 ? '' : `, or delete ${recordFile} if the file was republished on purpose`}.`,
      );
    }
    if (expected) return archive;
  }
  const sha256 = existsSync(archive)
    ? await sha256OfFile(archive, options.signal)
    : await download(source.url, archive, {
        size: source.size,
        sha256: expected,
        signal: options.signal,
        onProgress: options.onProgress,
        onResume: (from) => say(`resuming the download at byte ${from}`),
      });
  if (!expected) {
    const size = (await stat(archive)).size;
    const entry: SourceRecord = { url: source.url, size, sha256, recordedAt: new Date().toISOString() };
    await writeFile(`${recordFile}.tmp`, `${JSON.stringify(entry, null, 2)}\n`);
    await rename(`${recordFile}.tmp`, recordFile);
    say(`no sha256 is published for ${source.url}: recorded this download's, ${sha256}, in ${recordFile}; every later use is checked against it`);
  }
  return archive;
}

/** Downloads (if needed) and extracts the source into `root`, which must not exist yet. */
export async function fetchSource(source: DatasetSource, root: string, options: FetchOptions = {}): Promise<void> {
  const archive = await fetchArchive(source, options);
  (options.say ?? (() => {}))(`extracting ${path.basename(archive)} into ${root}`);
  try {
    await extractZip(archive, root, { signal: options.signal });
  } catch (e) {
    await rm(`${root}.tlpipe-tmp-${process.pid}`, { recursive: true, force: true });
    throw e;
  }
}

export type Consent = { kind: 'yes' } | { kind: 'ask'; question: string } | { kind: 'refuse'; message: string };

/**
 * Whether a download may start: `--download` says yes; a terminal is asked;
 * CI (CI=true) and other non-interactive runs are refused with what to do.
 */
export function downloadConsent(
  source: DatasetSource,
  root: string,
  context: { flag: boolean; interactive: boolean; ci: boolean },
): Consent {
  if (context.flag) return { kind: 'yes' };
  const size = source.size ? `${(source.size / 1e6).toFixed(0)} MB` : 'an archive';
  if (context.interactive && !context.ci) return { kind: 'ask', question: `The dataset is not at ${root}. Download ${size} from ${source.url}? [y/N] ` };
  return {
    kind: 'refuse',
    message:
      `The dataset is not at ${root}. Its source can be downloaded (${size} from ${source.url}): ` +
      `run again with --download${context.ci ? ' (never done in CI without it)' : ''}, or put the data there yourself.`,
  };
}
