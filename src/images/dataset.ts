// Finds, labels and validates the images of a dataset, and splits off
// validation. Bad images are reported and left out, never fatal; a dataset
// that cannot train a classifier (no images, one class) is a DatasetError.
// The layouts are collected by dataset-folders.ts and dataset-csv.ts, each
// file is read and checked by dataset-read.ts, the result by dataset-checks.ts.
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { forEachConcurrent } from './concurrency.js';
import { checkClasses, duplicateWarnings, noImagesMessage } from './dataset-checks.js';
import { collectFromCsv } from './dataset-csv.js';
import { DatasetError } from './dataset-error.js';
import { collectByFileName, collectByFolders, collectTest } from './dataset-folders.js';
import { readAndCheck } from './dataset-read.js';
import { resolveDatasetSpec, type DatasetSpec, type ResolvedDatasetSpec } from './dataset-spec.js';
import type { Candidate, Collected, DatasetImage, DatasetScan, ScanOptions, Split, SplitCounts } from './dataset-types.js';
import { compareCodePoints, compareIds } from './order.js';
import { stratifiedSplit } from './split.js';
import type { ImageLimits } from './validate.js';

export async function scanDataset(spec: DatasetSpec, options: ScanOptions = {}): Promise<DatasetScan> {
  const { spec: resolved, notes } = await withoutMissingOptionalFolders(resolveDatasetSpec(spec, options.baseDir));
  const { signal } = options;
  signal?.throwIfAborted();

  const collected = await collect(resolved, signal);
  collected.warnings.unshift(...notes);
  if (resolved.test) await collectTest(resolved.test, collected, signal);
  const { candidates, skipped, warnings, classes } = collected;

  if (!candidates.some((c) => c.group === 'pool')) {
    throw new DatasetError(noImagesMessage(collected), collected.trainLocation);
  }

  const limits: ImageLimits = { maxPixels: resolved.maxPixels, maxFileBytes: resolved.maxFileBytes };
  const classIndex = new Map(classes.map((name, i) => [name, i]));
  const valid: (DatasetImage & { key: string; group: Candidate['group'] })[] = [];
  let done = 0;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? Math.max(2, os.availableParallelism())));
  await forEachConcurrent(
    candidates,
    concurrency,
    async (candidate) => {
      const outcome = await readAndCheck(candidate.path, limits, options);
      if ('problem' in outcome) {
        skipped.push({ path: candidate.path, ...outcome.problem });
      } else {
        valid.push({
          path: candidate.path,
          hash: outcome.hash,
          label: candidate.className === null ? null : classIndex.get(candidate.className)!,
          id: candidate.id,
          split: candidate.group === 'test' ? 'test' : candidate.group === 'val' ? 'val' : 'train',
          format: outcome.format,
          width: outcome.width,
          height: outcome.height,
          key: candidate.key,
          group: candidate.group,
        });
      }
      options.onProgress?.(++done, candidates.length);
    },
    signal,
  );

  checkClasses(collected, valid);

  // Validation set: the declared one, else a stratified split of train.
  const pool = valid.filter((image) => image.group === 'pool');
  const hasValSet = resolved.layout === 'csv' ? resolved.valManifest !== null : resolved.val !== null;
  let validation: DatasetScan['validation'];
  if (hasValSet) {
    validation = 'declared';
  } else if (resolved.valFraction > 0) {
    validation = 'split';
    const { val } = stratifiedSplit(pool, (image) => image.label!, (image) => image.key, resolved.valFraction, resolved.seed);
    for (const image of val) image.split = 'val';
  } else {
    validation = 'none';
  }

  const images: DatasetImage[] = valid
    .map(({ key: _key, group: _group, ...image }) => image)
    .sort(compareImages);
  warnings.push(...duplicateWarnings(images));
  if (collected.ignored.length > 0) {
    const examples = collected.ignored.slice(0, 3).map((p) => path.basename(p));
    warnings.push(
      `${collected.ignored.length} file(s) ignored: not an image extension, hidden, or not a regular file (e.g. ${examples.join(', ')})`,
    );
  }
  skipped.sort((a, b) => compareCodePoints(a.path, b.path));

  return {
    spec: resolved,
    classes,
    images,
    counts: countImages(images, classes.length),
    validation,
    skipped,
    ignored: collected.ignored.length,
    warnings,
  };
}

/**
 * The validation and test folders are optional: one that does not exist is
 * absent (said in a note), so one pipeline fits data with or without them.
 * A path that exists but is not a folder is still an error (in collect).
 */
export async function withoutMissingOptionalFolders(spec: ResolvedDatasetSpec): Promise<{ spec: ResolvedDatasetSpec; notes: string[] }> {
  const notes: string[] = [];
  const exists = (p: string) => stat(p).then(() => true, () => false);
  let out = spec;
  if (spec.layout !== 'csv' && spec.val !== null && !(await exists(spec.val))) {
    notes.push(`no validation folder ${spec.val}: ${spec.valFraction > 0 ? `${Math.round(spec.valFraction * 100)} % of each class is held out instead` : 'no validation'}`);
    out = { ...out, val: null } as ResolvedDatasetSpec;
  }
  if (spec.test !== null && !(await exists(spec.test))) {
    notes.push(`no test folder ${spec.test}: no test images to predict`);
    out = { ...out, test: null };
  }
  return { spec: out, notes };
}

const SPLIT_ORDER: Record<Split, number> = { train: 0, val: 1, test: 2 };

function compareImages(a: DatasetImage, b: DatasetImage): number {
  if (a.split !== b.split) return SPLIT_ORDER[a.split] - SPLIT_ORDER[b.split];
  if (a.split === 'test' && a.id !== null && b.id !== null) {
    const byId = compareIds(a.id, b.id);
    if (byId !== 0) return byId;
  }
  return compareCodePoints(a.path, b.path);
}

function countImages(images: DatasetImage[], classCount: number): Record<Split, SplitCounts> {
  const counts = {
    train: { total: 0, perClass: new Array<number>(classCount).fill(0) },
    val: { total: 0, perClass: new Array<number>(classCount).fill(0) },
    test: { total: 0, perClass: new Array<number>(classCount).fill(0) },
  };
  for (const image of images) {
    counts[image.split].total++;
    if (image.label !== null) counts[image.split].perClass[image.label]!++;
  }
  return counts;
}

async function collect(spec: ResolvedDatasetSpec, signal: AbortSignal | undefined): Promise<Collected> {
  switch (spec.layout) {
    case 'filename':
      return collectByFileName(spec, signal);
    case 'folders':
      return collectByFolders(spec, signal);
    case 'csv':
      return collectFromCsv(spec);
  }
}
