// Collecting candidates from folders: the 'filename' layout (the class read
// from each file name), the 'folders' layout (one sub-folder per class), and
// the unlabelled test folder of any layout.
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { DatasetError } from './dataset-error.js';
import type { ResolvedDatasetSpec } from './dataset-spec.js';
import type { Candidate, Collected, SkippedFile } from './dataset-types.js';
import { hasImageExtension } from './formats.js';
import { compileLabelRule, describeLabelRule } from './label-rule.js';
import { compareCodePoints } from './order.js';
import { listSubfolders, walkFiles, type WalkProblem } from './walk.js';

export function emptyCollected(classes: string[], trainLocation: string, hint: string): Collected {
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

export async function collectByFileName(
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

export async function collectByFolders(
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

export async function collectTest(folder: string, into: Collected, signal: AbortSignal | undefined): Promise<void> {
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
export function sortClassNames(names: string[]): string[] {
  const distinct = [...new Set(names)];
  if (distinct.every((name) => /^-?\d+$/.test(name))) return distinct.sort((a, b) => Number(a) - Number(b));
  return distinct.sort(compareCodePoints);
}
