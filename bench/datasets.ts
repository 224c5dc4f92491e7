// The benchmark's image sets: the fixtures' catsdogs photos, and synthetic
// scale-ups made by re-encoding them. Scale-up images are cached in a temp
// folder (one file per index, so a 10,000 set is the first 10,000 of a 50,000
// one) and reused between runs.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { fixture, fixturesDir, haveFixtures } from '../test/support/fixtures.js';

export { fixturesDir, haveFixtures };
export const modelPath = fixture('models', 'mobilenetv2-12-int8.onnx');
const catsdogsDir = fixture('datasets', 'catsdogs-2k');

export const scaleUpDir = path.resolve(process.env.TLPIPE_BENCH_CACHE ?? path.join(os.tmpdir(), 'tlpipe-bench-scaleup'));

/** Every catsdogs photo (train, then test1), in a stable order. */
export async function catsdogsFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ['train', 'test1']) {
    const dir = path.join(catsdogsDir, sub);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.jpg')).sort();
    out.push(...names.map((n) => path.join(dir, n)));
  }
  if (out.length === 0) throw new Error(`no photos found under ${catsdogsDir}: set TLPIPE_FIXTURES to the shared fixtures folder`);
  return out;
}

const scaledName = (i: number) => `img-${String(i).padStart(6, '0')}.jpg`;

/**
 * `count` images: catsdogs photo i mod N re-encoded at a quality that varies
 * with each pass over the set, so every file is distinct but decodes like a
 * real photo of the same size. Missing files are made (a few minutes for 50,000).
 */
export async function scaledFiles(count: number, log: (line: string) => void = () => {}): Promise<string[]> {
  const sources = await catsdogsFiles();
  await mkdir(scaleUpDir, { recursive: true });
  const files = Array.from({ length: count }, (_, i) => path.join(scaleUpDir, scaledName(i)));
  const missing = files.map((f, i) => [f, i] as const).filter(([f]) => !existsSync(f));
  if (missing.length === 0) return files;

  log(`making ${missing.length} scale-up images in ${scaleUpDir} (cached for later runs)…`);
  const started = Date.now();
  let next = 0;
  let made = 0;
  const worker = async () => {
    for (;;) {
      const job = missing[next++];
      if (!job) return;
      const [file, i] = job;
      const pass = Math.floor(i / sources.length);
      const bytes = await sharp(await readFile(sources[i % sources.length]!))
        .jpeg({ quality: 95 - (pass % 20) })
        .toBuffer();
      // Written under a temporary name first, so an interrupted run leaves no half file.
      await writeFile(`${file}.part`, bytes);
      await rename(`${file}.part`, file);
      if (++made % 5000 === 0) log(`  ${made}/${missing.length} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  };
  await Promise.all(Array.from({ length: os.availableParallelism() + 1 }, worker));
  return files;
}

export type DatasetName = 'catsdogs' | 'scaled';

export interface DatasetRef {
  name: DatasetName;
  /** How many images: the first `count` of the set. */
  count: number;
}

export async function datasetFiles(ref: DatasetRef): Promise<string[]> {
  const files = ref.name === 'catsdogs' ? await catsdogsFiles() : await scaledFiles(ref.count);
  if (files.length < ref.count) throw new Error(`the ${ref.name} set has ${files.length} images, fewer than ${ref.count}`);
  return files.slice(0, ref.count);
}

/** Reads every file once so the page cache, not the disk, serves the timed runs. */
export async function warmPageCache(files: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < files.length) await readFile(files[next++]!);
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}
