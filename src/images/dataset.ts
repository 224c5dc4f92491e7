// Finds, labels and validates the images of a dataset, and splits off
// validation. Bad images are reported and left out, never fatal; a dataset
// that cannot train a classifier (no images, one class) is a DatasetError.
import { createHash } from 'node:crypto';
import { open, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { forEachConcurrent } from './concurrency.js';
import { parseCsv, CsvSyntaxError } from './csv.js';
import { DatasetError } from './dataset-error.js';
import { resolveDatasetSpec, type DatasetSpec, type ResolvedDatasetSpec } from './dataset-spec.js';
import { hasImageExtension } from './formats.js';
import type { ImageProblemKind } from './image-problems.js';
import { compileLabelRule, describeLabelRule } from './label-rule.js';
import { compareCodePoints, compareIds } from './order.js';
import { stratifiedSplit } from './split.js';
import { checkImageBytes, type ImageCheck, type ImageLimits } from './validate.js';
import { listSubfolders, walkFiles, type WalkProblem } from './walk.js';

export { DatasetError } from './dataset-error.js';
export { datasetSpecSchema, resolveDatasetSpec } from './dataset-spec.js';
export type { DatasetSpec, ResolvedDatasetSpec, DatasetLayout } from './dataset-spec.js';
export type { LabelRule } from './label-rule.js';
export { CATS_VS_DOGS_RULE } from './label-rule.js';

export type Split = 'train' | 'val' | 'test';

export interface DatasetImage {
  /** Absolute path, as reached (symbolic links not resolved). */
  path: string;
  /** sha256 of the file bytes, hex. */
  hash: string;
  /** Class index into DatasetScan.classes; null for unlabelled (test) images. */
  label: number | null;
  /** Test image id from its file name (123 for "123.jpg", "img_7" for "img_7.png"); null for labelled images. */
  id: number | string | null;
  split: Split;
  /** Decoded format (sharp's id: jpeg, png, webp, gif, tiff, heif). */
  format: string;
  /** Size after EXIF orientation. */
  width: number;
  height: number;
}

export interface SkippedFile {
  path: string;
  kind: ImageProblemKind;
  reason: string;
}

export interface SplitCounts {
  total: number;
  /** Images per class index (all zero for the unlabelled test split). */
  perClass: number[];
}

export interface DatasetScan {
  spec: ResolvedDatasetSpec;
  classes: string[];
  /** Sorted by split (train, val, test), then path; test images by id (numbers first, ascending). */
  images: DatasetImage[];
  counts: Record<Split, SplitCounts>;
  /** How the validation images were chosen: a declared folder or manifest, a stratified split of train, or none. */
  validation: 'declared' | 'split' | 'none';
  /** Files that look like images but cannot be used, with the reason. */
  skipped: SkippedFile[];
  /** Files left out without a look: not an image extension, hidden, or not a regular file. */
  ignored: number;
  warnings: string[];
}

export interface ScanOptions {
  /** Images validated at once (default: the number of CPUs, at least 2). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Called after each candidate image is read and checked. */
  onProgress?: (done: number, total: number) => void;
  /** Folder that relative paths in the spec are resolved against (default: the working directory). */
  baseDir?: string;
  /**
   * Results of earlier checks, by `checkKey(hash, limits)`: a file whose bytes
   * were already checked is not decoded again (the check depends on nothing else).
   */
  knownChecks?: ReadonlyMap<string, ImageCheck>;
  /** Called with each new check result, to be remembered for the next scan. */
  onChecked?: (key: string, check: ImageCheck) => void;
}

/** What a check result depends on: the file's content and the limits. */
export function checkKey(hash: string, limits: ImageLimits): string {
  return `${hash}:${limits.maxPixels}:${limits.maxFileBytes}`;
}

/** A file to validate, before its content is known. */
interface Candidate {
  path: string;
  /** Path relative to its dataset root: the split is keyed on it, so it survives moving the dataset. */
  key: string;
  group: 'pool' | 'val' | 'test';
  className: string | null;
  id: number | string | null;
}

/** Everything found before validation. */
interface Collected {
  candidates: Candidate[];
  skipped: SkippedFile[];
  ignored: string[];
  warnings: string[];
  /** Class names in index order. */
  classes: string[];
  /** Where training images come from, for messages. */
  trainLocation: string;
  hint: string;
}

export async function scanDataset(spec: DatasetSpec, options: ScanOptions = {}): Promise<DatasetScan> {
  const resolved = resolveDatasetSpec(spec, options.baseDir);
  const { signal } = options;
  signal?.throwIfAborted();

  const collected = await collect(resolved, signal);
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

// ---------------------------------------------------------------------------
// Reading and checking one file

type CheckOutcome = { problem: { kind: ImageProblemKind; reason: string } } | { hash: string; format: string; width: number; height: number };

/** Reads the file once; the same bytes are hashed and decoded. */
async function readAndCheck(file: string, limits: ImageLimits, memo: Pick<ScanOptions, 'knownChecks' | 'onChecked'>): Promise<CheckOutcome> {
  let bytes: Buffer;
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, 'r');
    const { size } = await handle.stat();
    if (size > limits.maxFileBytes) {
      return {
        problem: { kind: 'file-too-large', reason: `file is ${size} bytes, over the limit of ${limits.maxFileBytes} bytes` },
      };
    }
    bytes = await handle.readFile();
  } catch (error) {
    return { problem: describeReadError(error) };
  } finally {
    await handle?.close();
  }
  const hash = createHash('sha256').update(bytes).digest('hex');
  const key = checkKey(hash, limits);
  let check = memo.knownChecks?.get(key);
  if (!check) {
    check = await checkImageBytes(bytes, limits);
    memo.onChecked?.(key, check);
  }
  if (!check.ok) return { problem: { kind: check.kind, reason: check.reason } };
  return {
    hash,
    format: check.format,
    width: check.width,
    height: check.height,
  };
}

function describeReadError(error: unknown): { kind: ImageProblemKind; reason: string } {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return { kind: 'unreadable', reason: 'file does not exist' };
  if (code === 'EACCES' || code === 'EPERM') return { kind: 'unreadable', reason: 'permission denied' };
  if (code === 'ELOOP') return { kind: 'symlink-loop', reason: 'symbolic link loop: the link resolves to itself' };
  if (code === 'EISDIR') return { kind: 'unreadable', reason: 'is a folder, not a file' };
  return { kind: 'unreadable', reason: `cannot read file (${(error as Error).message})` };
}

// ---------------------------------------------------------------------------
// Collecting candidates per layout

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

function emptyCollected(classes: string[], trainLocation: string, hint: string): Collected {
  return { candidates: [], skipped: [], ignored: [], warnings: [], classes, trainLocation, hint };
}

async function requireFolder(folder: string, field: string): Promise<void> {
  let info;
  try {
    info = await stat(folder);
  } catch {
    throw new DatasetError(`dataset.${field} folder ${folder} does not exist: check the path (relative paths start at the pipeline file)`, folder);
  }
  if (!info.isDirectory()) {
    throw new DatasetError(`dataset.${field} is ${folder}, which is a file, not a folder: point ${field} at the folder holding the images`, folder);
  }
}

function addWalkProblems(into: Collected, problems: WalkProblem[]): void {
  for (const problem of problems) into.skipped.push({ path: problem.path, kind: problem.kind, reason: problem.reason });
}

/** Walks a folder and turns each image file into a candidate; other files are counted as ignored. */
async function collectFolder(
  into: Collected,
  root: string,
  walk: { visited: Set<string>; claimed?: ReadonlySet<string>; signal: AbortSignal | undefined },
  toCandidate: (file: { path: string; relativePath: string }) => Candidate | { problem: SkippedFile },
): Promise<number> {
  const walked = await walkFiles(root, walk);
  addWalkProblems(into, walked.problems);
  into.ignored.push(...walked.ignored);
  let found = 0;
  for (const file of walked.files) {
    if (!hasImageExtension(file.path)) {
      into.ignored.push(file.path);
      continue;
    }
    found++;
    const candidate = toCandidate(file);
    if ('problem' in candidate) into.skipped.push(candidate.problem);
    else into.candidates.push(candidate);
  }
  return found;
}

async function collectByFileName(
  spec: Extract<ResolvedDatasetSpec, { layout: 'filename' }>,
  signal: AbortSignal | undefined,
): Promise<Collected> {
  await requireFolder(spec.train, 'train');
  if (spec.val) await requireFolder(spec.val, 'val');
  const rule = compileLabelRule(spec.labelRule);
  const collected = emptyCollected(
    [],
    spec.train,
    `check dataset.labelRule (now: ${describeLabelRule(spec.labelRule)}) against the file names in ${spec.train}`,
  );
  const walk = { visited: new Set<string>(), signal };
  const labelled = (group: 'pool' | 'val') => (file: { path: string; relativePath: string }) => {
    const outcome = rule.labelOf(path.basename(file.path));
    if ('reason' in outcome) return { problem: { path: file.path, kind: 'no-label' as const, reason: outcome.reason } };
    return { path: file.path, key: file.relativePath, group, className: outcome.label, id: null };
  };
  await collectFolder(collected, spec.train, walk, labelled('pool'));
  if (spec.val) await collectFolder(collected, spec.val, walk, labelled('val'));
  collected.classes = rule.declaredClasses ?? sortClassNames(collected.candidates.map((c) => c.className!));
  return collected;
}

async function collectByFolders(
  spec: Extract<ResolvedDatasetSpec, { layout: 'folders' }>,
  signal: AbortSignal | undefined,
): Promise<Collected> {
  await requireFolder(spec.train, 'train');
  if (spec.val) await requireFolder(spec.val, 'val');
  const listing = await listSubfolders(spec.train);
  const collected = emptyCollected(
    [],
    spec.train,
    `put each class's images in its own sub-folder of ${spec.train} (e.g. ${path.join(spec.train, 'cats')} and ${path.join(spec.train, 'dogs')})`,
  );
  addWalkProblems(collected, listing.problems);

  let classes = listing.folders;
  if (spec.classes) {
    const missing = spec.classes.filter((name) => !listing.folders.includes(name));
    if (missing.length > 0) {
      throw new DatasetError(
        `dataset.classes names ${missing.map((m) => `'${m}'`).join(', ')} but ${spec.train} has no such sub-folder: ` +
          `create ${path.join(spec.train, missing[0]!)} or remove it from classes`,
        spec.train,
      );
    }
    const unused = listing.folders.filter((name) => !spec.classes!.includes(name));
    if (unused.length > 0) {
      collected.warnings.push(`sub-folders of ${spec.train} not in dataset.classes were left out: ${unused.join(', ')}`);
    }
    classes = spec.classes;
  }
  collected.classes = classes;
  if (listing.files.length > 0) {
    collected.ignored.push(...listing.files.map((name) => path.join(spec.train, name)));
    collected.warnings.push(
      `${listing.files.length} file(s) directly in ${spec.train} are in no class folder and were ignored (e.g. ${listing.files[0]})`,
    );
  }

  const valListing = spec.val ? await listSubfolders(spec.val) : null;
  // Class folders belong to their class: a link from one into another is not followed.
  const classFolders = [
    ...classes.map((name) => path.join(spec.train, name)),
    ...(valListing?.folders ?? []).map((name) => path.join(spec.val!, name)),
  ];
  const claimed = new Set(await Promise.all(classFolders.map((folder) => realpath(folder))));
  const walk = { visited: new Set<string>(), claimed, signal };
  const inClass = (group: 'pool' | 'val', className: string) => (file: { path: string; relativePath: string }) => ({
    path: file.path,
    key: `${className}/${file.relativePath}`,
    group,
    className,
    id: null,
  });
  for (const className of classes) {
    const folder = path.join(spec.train, className);
    const found = await collectFolder(collected, folder, walk, inClass('pool', className));
    if (found === 0) collected.warnings.push(`class folder ${folder} has no image files`);
  }

  if (spec.val && valListing) {
    addWalkProblems(collected, valListing.problems);
    const unknown = valListing.folders.filter((name) => !classes.includes(name));
    if (unknown.length > 0) {
      throw new DatasetError(
        `validation folder ${spec.val} has class folder(s) ${unknown.map((u) => `'${u}'`).join(', ')} that ${spec.train} does not have: ` +
          'use the same class folder names in train and val',
        spec.val,
      );
    }
    if (valListing.files.length > 0) {
      collected.ignored.push(...valListing.files.map((name) => path.join(spec.val!, name)));
      collected.warnings.push(`${valListing.files.length} file(s) directly in ${spec.val} are in no class folder and were ignored`);
    }
    for (const className of valListing.folders) {
      const folder = path.join(spec.val, className);
      await collectFolder(collected, folder, walk, inClass('val', className));
    }
    const missing = classes.filter((name) => !valListing.folders.includes(name));
    if (missing.length > 0) collected.warnings.push(`validation folder ${spec.val} has no folder for class(es) ${missing.join(', ')}`);
  }
  return collected;
}

async function collectFromCsv(spec: Extract<ResolvedDatasetSpec, { layout: 'csv' }>): Promise<Collected> {
  const collected = emptyCollected(
    [],
    spec.manifest,
    `check the label column of ${spec.manifest}: it needs at least two different labels`,
  );
  const seen = new Set<string>();
  const rows = [
    ...(await readManifest(spec.manifest, 'manifest', 'pool')),
    ...(spec.valManifest ? await readManifest(spec.valManifest, 'valManifest', 'val') : []),
  ];
  const labelled: { row: ManifestRow; className: string }[] = [];
  for (const row of rows) {
    const where = `${path.basename(row.manifest)} line ${row.line}`;
    if (seen.has(row.path)) {
      collected.warnings.push(`${row.path} is listed more than once (again at ${where}); the first row is used`);
      continue;
    }
    seen.add(row.path);
    if (row.label === '') {
      collected.skipped.push({ path: row.path, kind: 'no-label', reason: `empty label at ${where}` });
      continue;
    }
    if (spec.classes && !spec.classes.includes(row.label)) {
      collected.skipped.push({
        path: row.path,
        kind: 'no-label',
        reason: `label '${row.label}' at ${where} is not one of dataset.classes ${JSON.stringify(spec.classes)}`,
      });
      continue;
    }
    labelled.push({ row, className: row.label });
  }
  collected.classes = spec.classes ?? sortClassNames(labelled.map((l) => l.className));
  for (const { row, className } of labelled) {
    collected.candidates.push({
      path: row.path,
      key: path.relative(path.dirname(spec.manifest), row.path).split(path.sep).join('/'),
      group: row.group,
      className,
      id: null,
    });
  }
  return collected;
}

interface ManifestRow {
  manifest: string;
  line: number;
  path: string;
  label: string;
  group: 'pool' | 'val';
}

async function readManifest(manifest: string, field: string, group: 'pool' | 'val'): Promise<ManifestRow[]> {
  let text: string;
  try {
    text = await readFile(manifest, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DatasetError(
      code === 'ENOENT'
        ? `dataset.${field} ${manifest} does not exist: check the path (relative paths start at the pipeline file)`
        : `cannot read dataset.${field} ${manifest}: ${(error as Error).message}`,
      manifest,
    );
  }
  let rows;
  try {
    rows = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvSyntaxError) throw new DatasetError(`${manifest}: ${error.message}`, manifest);
    throw error;
  }
  if (rows.length === 0) throw new DatasetError(`${manifest} is empty: it needs a header row path,label and one row per image`, manifest);
  const header = rows[0]!.fields.map((name) => name.trim().toLowerCase());
  const pathColumn = header.indexOf('path');
  const labelColumn = header.indexOf('label');
  if (pathColumn < 0 || labelColumn < 0) {
    throw new DatasetError(
      `${manifest} has no ${pathColumn < 0 ? "'path'" : "'label'"} column: its first row must be a header naming the columns, e.g. path,label`,
      manifest,
    );
  }
  const base = path.dirname(manifest);
  const result: ManifestRow[] = [];
  for (const row of rows.slice(1)) {
    const file = (row.fields[pathColumn] ?? '').trim();
    if (file === '') continue;
    result.push({
      manifest,
      line: row.line,
      path: path.resolve(base, file),
      label: (row.fields[labelColumn] ?? '').trim(),
      group,
    });
  }
  return result;
}

async function collectTest(folder: string, into: Collected, signal: AbortSignal | undefined): Promise<void> {
  await requireFolder(folder, 'test');
  const ids = new Map<string, string>();
  await collectFolder(into, folder, { visited: new Set(), signal }, (file) => {
    const id = idFromFileName(path.basename(file.path));
    const previous = ids.get(String(id));
    if (previous !== undefined) into.warnings.push(`test images ${previous} and ${file.path} have the same id ${JSON.stringify(id)}`);
    else ids.set(String(id), file.path);
    return { path: file.path, key: file.relativePath, group: 'test', className: null, id };
  });
}

/** "123.jpg" → 123; "007.jpg", "img_3.png" → the stem as a string. */
export function idFromFileName(fileName: string): number | string {
  const extension = path.extname(fileName);
  const stem = extension ? fileName.slice(0, -extension.length) : fileName;
  if (/^(0|[1-9]\d*)$/.test(stem)) {
    const value = Number(stem);
    if (Number.isSafeInteger(value)) return value;
  }
  return stem;
}

/** Sorted distinct names; numerically when all are integers ("2" before "10"). */
function sortClassNames(names: string[]): string[] {
  const distinct = [...new Set(names)];
  if (distinct.every((name) => /^-?\d+$/.test(name))) return distinct.sort((a, b) => Number(a) - Number(b));
  return distinct.sort(compareCodePoints);
}

// ---------------------------------------------------------------------------
// Checks on the result

function noImagesMessage(collected: Collected): string {
  const skipped = collected.skipped.length;
  const ignored = collected.ignored.length;
  const details = [skipped ? `${skipped} skipped` : '', ignored ? `${ignored} ignored (not image files)` : '']
    .filter(Boolean)
    .join(', ');
  return (
    `no training images found in ${collected.trainLocation}${details ? ` (${details})` : ''}: ` +
    `add .jpg/.png/.webp images there, ${collected.hint}`
  );
}

function checkClasses(collected: Collected, valid: { label: number | null; group: Candidate['group'] }[]): void {
  const { classes, trainLocation } = collected;
  const perClass = new Array<number>(classes.length).fill(0);
  for (const image of valid) if (image.group === 'pool') perClass[image.label!]!++;
  const total = perClass.reduce((a, b) => a + b, 0);
  if (total === 0) {
    throw new DatasetError(
      `none of the images in ${trainLocation} can be used (${collected.skipped.length} skipped, see the reasons): ` +
        'replace the unreadable files',
      trainLocation,
    );
  }
  const present = classes.filter((_, i) => perClass[i]! > 0);
  for (const [i, name] of classes.entries()) {
    if (perClass[i] === 0) collected.warnings.push(`class '${name}' has no usable training images`);
  }
  if (present.length < 2) {
    const found = present.length === 1 ? `only one class ('${present[0]}')` : 'no class';
    throw new DatasetError(
      `${found} has images in ${trainLocation}, and a classifier needs at least two: ${collected.hint}`,
      trainLocation,
    );
  }
}

function duplicateWarnings(images: DatasetImage[]): string[] {
  const byHash = new Map<string, string>();
  const pairs: string[] = [];
  for (const image of images) {
    const first = byHash.get(image.hash);
    if (first === undefined) byHash.set(image.hash, image.path);
    else pairs.push(`${path.basename(first)} = ${path.basename(image.path)}`);
  }
  if (pairs.length === 0) return [];
  return [`${pairs.length} image(s) have the same content as another (same sha256), e.g. ${pairs.slice(0, 3).join(', ')}`];
}
