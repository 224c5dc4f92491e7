// Recognises how an image folder is laid out, so one pipeline (`layout: auto`)
// and `tlpipe init` fit the common downloads without a new file each:
//   - ImageFolder with splits: train/<class>/, optional val/<class>/ and test/
//   - Kaggle's file-name layout: train/cat.0.jpg …, optional test1/ or test/
//   - Microsoft's PetImages: PetImages/<class>/ (no split: one is drawn)
//   - a CSV manifest (a .csv with columns path,label), optional test/
//   - a folder of class folders with no split (one is drawn)
//   - one folder of images labelled by their file names
// Detection reads folder listings only, never image contents.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseCsv } from './csv.js';
import { DatasetError } from './dataset-error.js';
import type { ConcreteDatasetSpec, DatasetSpec } from './dataset-spec.js';
import { hasImageExtension } from './formats.js';
import type { LabelRule } from './label-rule.js';

export type LayoutKind = 'imagefolder' | 'kaggle' | 'petimages' | 'csv' | 'class-folders' | 'filenames';

export interface DetectedLayout {
  kind: LayoutKind;
  /** The folder looked at (absolute). */
  root: string;
  /** One line for logs and `tlpipe init`: what was recognised, where. */
  description: string;
  /** The concrete spec, paths absolute; split, seed and limits are the caller's. */
  spec: ConcreteDatasetSpec;
}

/** Leading letters of a file name ("cat.12.jpg" → "cat", "Abyssinian_3.jpg" → "Abyssinian"). */
export const NAME_PREFIX_RULE: LabelRule = { type: 'regex', pattern: '^([A-Za-z][A-Za-z ]*?)[._\\-\\d]' };

interface Listing {
  folders: string[];
  images: string[];
  csvs: string[];
}

async function list(dir: string): Promise<Listing> {
  const entries = await readdir(dir, { withFileTypes: true });
  const visible = entries.filter((e) => !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const folders: string[] = [];
  const images: string[] = [];
  const csvs: string[] = [];
  for (const e of visible) {
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) isDir = await stat(path.join(dir, e.name)).then((s) => s.isDirectory(), () => false);
    if (isDir) folders.push(e.name);
    else if (hasImageExtension(e.name)) images.push(e.name);
    else if (e.name.toLowerCase().endsWith('.csv')) csvs.push(e.name);
  }
  return { folders, images, csvs };
}

const isFolder = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);

/** Sub-folders of `dir` that hold at least one image directly (class folders). */
async function classFolders(dir: string, listing: Listing): Promise<string[]> {
  const out: string[] = [];
  for (const name of listing.folders) {
    const inner = await list(path.join(dir, name)).catch(() => null);
    if (inner && inner.images.length > 0) out.push(name);
  }
  return out;
}

async function firstExisting(root: string, names: string[]): Promise<string | undefined> {
  for (const n of names) if (await isFolder(path.join(root, n))) return path.join(root, n);
  return undefined;
}

async function isManifest(file: string): Promise<boolean> {
  try {
    const firstLine = (await readFile(file, 'utf8')).split(/\r?\n/, 1)[0] ?? '';
    const columns = (parseCsv(firstLine)[0]?.fields ?? []).map((c) => c.trim().toLowerCase());
    return columns.includes('path') && columns.includes('label');
  } catch {
    return false;
  }
}

export async function detectLayout(root: string): Promise<DetectedLayout> {
  if (!(await isFolder(root))) {
    throw new DatasetError(`the dataset folder ${root} does not exist (or is not a folder): check the path, or give the dataset a source to download`, root);
  }
  const top = await list(root);
  const test = await firstExisting(root, ['test', 'test1']);
  const withTest = <T extends object>(spec: T) => (test ? { ...spec, test } : spec);

  const train = path.join(root, 'train');
  if (top.folders.includes('train')) {
    const inner = await list(train);
    // Images directly in train/ mean Kaggle's layout (sub-folders are walked too, labelled by file name).
    const classes = inner.images.length > 0 ? [] : await classFolders(train, inner);
    if (classes.length > 0) {
      const val = await firstExisting(root, ['val', 'valid', 'validation']);
      return {
        root,
        kind: 'imagefolder',
        description: `ImageFolder layout: ${train}/<class>/ (${classes.length} classes)${val ? `, validation ${val}` : ''}${test ? `, test ${test}` : ''}`,
        spec: withTest({ layout: 'folders' as const, train, ...(val ? { val } : {}) }),
      };
    }
    if (inner.images.length > 0 || inner.folders.length === 0) {
      // A flat train/ (or an empty one: the scan then says it has no images).
      return {
        root,
        kind: 'kaggle',
        description: `Kaggle file-name layout: ${train}/ (labels from file names)${test ? `, test ${test}` : ''}`,
        spec: withTest({ layout: 'filename' as const, train, labelRule: NAME_PREFIX_RULE }),
      };
    }
  }
  if (top.folders.includes('PetImages')) {
    const pets = path.join(root, 'PetImages');
    const classes = await classFolders(pets, await list(pets));
    if (classes.length > 0) {
      return {
        root,
        kind: 'petimages',
        description: `PetImages layout: ${pets}/<class>/ (${classes.join(', ')})`,
        spec: { layout: 'folders', train: pets },
      };
    }
  }
  for (const name of top.csvs) {
    const manifest = path.join(root, name);
    if (await isManifest(manifest)) {
      return {
        root,
        kind: 'csv',
        description: `CSV manifest ${manifest}${test ? `, test ${test}` : ''}`,
        spec: withTest({ layout: 'csv' as const, manifest }),
      };
    }
  }
  const classes = (await classFolders(root, top)).filter((c) => !['test', 'test1'].includes(c));
  if (classes.length >= 2) {
    return {
      root,
      kind: 'class-folders',
      description: `class folders: ${root}/<class>/ (${classes.length} classes, no split)${test ? `, test ${test}` : ''}`,
      spec: withTest({ layout: 'folders' as const, train: root, classes }),
    };
  }
  if (top.images.length > 0) {
    return {
      root,
      kind: 'filenames',
      description: `one folder of images labelled by file name: ${root}/`,
      spec: { layout: 'filename', train: root, labelRule: NAME_PREFIX_RULE },
    };
  }
  throw new DatasetError(
    `cannot tell how the images in ${root} are laid out. Expected one of: train/<class>/ (and optional val/, test/); ` +
      'train/ with labels in the file names (cat.0.jpg); PetImages/<class>/; a CSV with columns path,label; ' +
      `or one folder per class. Found ${top.folders.length} folder(s) and ${top.images.length} image(s) at the top.`,
    root,
  );
}

/**
 * A concrete spec: `layout: auto` becomes the layout found under its root (the
 * split, seed, limits, classes and label rule carried over); others unchanged.
 */
export async function resolveAutoLayout(spec: DatasetSpec, baseDir: string): Promise<{ spec: ConcreteDatasetSpec; detected: DetectedLayout | null }> {
  if (spec.layout !== 'auto') return { spec, detected: null };
  const detected = await detectLayout(path.resolve(baseDir, spec.root));
  const { layout: _layout, root: _root, source: _source, labelRule, classes, ...common } = spec;
  const found = detected.spec;
  const concrete: ConcreteDatasetSpec =
    found.layout === 'filename'
      ? { ...found, ...common, ...(labelRule ? { labelRule } : {}) }
      : { ...found, ...common, ...(classes ? { classes } : {}) };
  return { spec: concrete, detected };
}
