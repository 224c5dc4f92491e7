// Writing a report file: thumbnails of the misclassified images that still
// exist, the page, then an atomic write so a reader never opens half a file.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { RunRecord } from '../runner/runs.js';
import { findProjectDir } from '../runner/analyze.js';
import { isAlive } from '../runner/store.js';
import { evaluationOf, MISTAKES_SHOWN, shownMistakes } from './data.js';
import { renderReport } from './html.js';
import { ThumbnailCache } from './thumbnail-cache.js';

/** Longest side of a thumbnail, in pixels: enough to recognise an image, small enough to embed dozens. */
export const THUMBNAIL_SIZE = 96;
const THUMBNAIL_QUALITY = 70;
/** What else a remembered thumbnail depends on. */
const THUMBNAIL_VARIANT = `jpeg-${THUMBNAIL_SIZE}-q${THUMBNAIL_QUALITY}`;

const dataUri = (jpeg: Buffer) => `data:image/jpeg;base64,${jpeg.toString('base64')}`;

/** Images decoded at once; decoding is CPU-bound. */
const THUMBNAIL_CONCURRENCY = 4;

/** Data URIs for the images the report shows; an image that is gone or unreadable gets none. */
export async function thumbnailsFor(
  records: RunRecord[],
  projectDir = findProjectDir(process.cwd()),
  cache = new ThumbnailCache(),
): Promise<Map<string, string>> {
  const paths = new Set<string>();
  for (const r of records) {
    const evaluation = evaluationOf(r);
    if (evaluation) for (const m of shownMistakes(evaluation, MISTAKES_SHOWN)) if (m.path) paths.add(m.path);
  }
  const out = new Map<string, string>();
  const toMake: { file: string; key: string | undefined }[] = [];
  for (const file of paths) {
    // Manifests store paths inside the project relative to it.
    const key = cache.key(path.resolve(projectDir, file), THUMBNAIL_VARIANT);
    const known = key === undefined ? undefined : cache.get(key);
    if (known) out.set(file, dataUri(known));
    else if (key !== undefined) toMake.push({ file, key }); // no key: the image is gone
  }
  if (toMake.length === 0) return out;
  // Only now the decoder: a report of thumbnails already made never loads it.
  const { makeThumbnail } = await import('../images/thumbnail.js');
  const worker = async () => {
    for (let item = toMake.shift(); item !== undefined; item = toMake.shift()) {
      try {
        const jpeg = await makeThumbnail(path.resolve(projectDir, item.file), THUMBNAIL_SIZE, { quality: THUMBNAIL_QUALITY });
        out.set(item.file, dataUri(jpeg));
        if (item.key) cache.put(item.key, jpeg);
      } catch {
        // Moved, deleted or unreadable since the run: the report shows a placeholder.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(THUMBNAIL_CONCURRENCY, toMake.length) }, worker));
  cache.prune();
  return out;
}

export async function writeFileAtomic(file: string, data: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  // Temp files of writers that were killed before their rename: their process is gone.
  const prefix = `.${path.basename(file)}.`;
  for (const name of await fs.readdir(path.dirname(file)).catch(() => [] as string[])) {
    const pid = Number(/^(\d+)-[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length))?.[1]);
    if (name.startsWith(prefix) && pid > 0 && pid !== process.pid && !isAlive(pid)) await fs.rm(path.join(path.dirname(file), name), { force: true });
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** Renders the report of one run, or a comparison of several, into `outFile` (an HTML file). */
export async function writeReport(records: RunRecord[], outFile: string, options: { title?: string; projectDir?: string } = {}): Promise<string> {
  const file = path.resolve(outFile);
  const thumbnails = await thumbnailsFor(records, options.projectDir);
  await writeFileAtomic(file, renderReport(records, { thumbnails, title: options.title }));
  return file;
}
