// Recursive folder listing for datasets. Follows symbolic links (datasets
// are often assembled from links) but tracks the real path of every folder,
// so a link back to a parent ends the walk there instead of looping, and a
// folder reached twice is listed once. Names that are not valid UTF-8 are
// reported, not guessed at: such a path cannot be written to a manifest
// and read back. Hidden entries (".DS_Store", "._photo.jpg") are ignored.
import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ImageProblemKind } from './image-problems.js';
import { compareCodePoints } from './order.js';

export interface WalkedFile {
  /** Absolute path as reached (through links, not resolved). */
  path: string;
  /** Path relative to the walked root, with "/" separators. */
  relativePath: string;
}

export interface WalkProblem {
  path: string;
  kind: ImageProblemKind;
  reason: string;
}

export interface WalkResult {
  files: WalkedFile[];
  problems: WalkProblem[];
  /** Hidden entries and things that are neither files nor folders. */
  ignored: string[];
}

export interface WalkOptions {
  /** Real paths of folders already walked (shared across calls to avoid scanning a folder twice). */
  visited?: Set<string>;
  /** Real paths of folders that other walks own (sibling class folders): not entered through links. */
  claimed?: ReadonlySet<string>;
  signal?: AbortSignal;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lossyUtf8 = new TextDecoder('utf-8');

/** Immediate sub-folders of `dir` (links to folders included), sorted by code point, hidden ones left out. */
export async function listSubfolders(dir: string): Promise<{ folders: string[]; files: string[]; problems: WalkProblem[] }> {
  const folders: string[] = [];
  const files: string[] = [];
  const problems: WalkProblem[] = [];
  for (const entry of await readEntries(dir)) {
    const named = entryName(dir, entry);
    if ('problem' in named) {
      problems.push(named.problem);
      continue;
    }
    if (named.name.startsWith('.')) continue;
    const kind = await entryKind(named.fullPath, entry);
    if (kind.type === 'directory') folders.push(named.name);
    else if (kind.type === 'file') files.push(named.name);
    else if (kind.type === 'problem') problems.push(kind.problem);
  }
  folders.sort(compareCodePoints);
  files.sort(compareCodePoints);
  return { folders, files, problems };
}

/** Every file under `root`, recursively, sorted by relative path. */
export async function walkFiles(root: string, options: WalkOptions = {}): Promise<WalkResult> {
  const result: WalkResult = { files: [], problems: [], ignored: [] };
  const visited = options.visited ?? new Set<string>();
  const rootReal = await realpath(root);
  if (visited.has(rootReal)) {
    result.problems.push({
      path: root,
      kind: 'already-scanned',
      reason: `folder ${rootReal} is already scanned through another path (symbolic link); not scanned twice`,
    });
    return result;
  }
  visited.add(rootReal);
  await walkInto(root, '', rootReal, { visited, claimed: options.claimed ?? new Set(), result, signal: options.signal });
  result.files.sort((a, b) => compareCodePoints(a.relativePath, b.relativePath));
  return result;
}

interface WalkState {
  visited: Set<string>;
  claimed: ReadonlySet<string>;
  result: WalkResult;
  signal: AbortSignal | undefined;
}

async function walkInto(dir: string, relativeDir: string, dirReal: string, state: WalkState): Promise<void> {
  const { visited, claimed, result, signal } = state;
  signal?.throwIfAborted();
  let entries: Dirent<Buffer>[];
  try {
    entries = await readEntries(dir);
  } catch (error) {
    result.problems.push({ path: dir, kind: 'unreadable', reason: `cannot list folder (${(error as Error).message})` });
    return;
  }
  for (const entry of entries) {
    const named = entryName(dir, entry);
    if ('problem' in named) {
      result.problems.push(named.problem);
      continue;
    }
    const { name, fullPath } = named;
    const relativePath = relativeDir ? `${relativeDir}/${name}` : name;
    if (name.startsWith('.')) {
      result.ignored.push(fullPath);
      continue;
    }
    const kind = await entryKind(fullPath, entry);
    if (kind.type === 'problem') {
      result.problems.push(kind.problem);
    } else if (kind.type === 'file') {
      result.files.push({ path: fullPath, relativePath });
    } else if (kind.type === 'other') {
      result.ignored.push(fullPath);
    } else {
      let real: string;
      try {
        real = await realpath(fullPath);
      } catch (error) {
        result.problems.push({ path: fullPath, kind: 'unreadable', reason: `cannot resolve folder (${(error as Error).message})` });
        continue;
      }
      // A link to this folder or any folder above it (inside the dataset or not) would loop.
      if (dirReal === real || dirReal.startsWith(real.endsWith(path.sep) ? real : real + path.sep)) {
        result.problems.push({
          path: fullPath,
          kind: 'symlink-loop',
          reason: `symbolic link loop: leads back to ${real}, which contains it; not followed`,
        });
        continue;
      }
      if (visited.has(real) || claimed.has(real)) {
        result.problems.push({
          path: fullPath,
          kind: 'already-scanned',
          reason: `folder ${real} is already scanned through another path (symbolic link); not scanned twice`,
        });
        continue;
      }
      visited.add(real);
      await walkInto(fullPath, relativePath, real, state);
    }
  }
}

function readEntries(dir: string): Promise<Dirent<Buffer>[]> {
  // Raw byte names, so that invalid UTF-8 is detected instead of silently replaced.
  return readdir(dir, { withFileTypes: true, encoding: 'buffer' }).then((entries) =>
    entries.sort((a, b) => Buffer.compare(a.name, b.name)),
  );
}

function entryName(dir: string, entry: Dirent<Buffer>): { name: string; fullPath: string } | { problem: WalkProblem } {
  try {
    const name = strictUtf8.decode(entry.name);
    return { name, fullPath: path.join(dir, name) };
  } catch {
    return {
      problem: {
        path: path.join(dir, lossyUtf8.decode(entry.name)),
        kind: 'invalid-file-name',
        reason: `file name is not valid UTF-8 (bytes ${entry.name.toString('hex')}); rename it`,
      },
    };
  }
}

type EntryKind =
  | { type: 'file' }
  | { type: 'directory' }
  | { type: 'other' }
  | { type: 'problem'; problem: WalkProblem };

async function entryKind(fullPath: string, entry: Dirent<Buffer>): Promise<EntryKind> {
  if (entry.isFile()) return { type: 'file' };
  if (entry.isDirectory()) return { type: 'directory' };
  if (!entry.isSymbolicLink()) return { type: 'other' };
  try {
    const target = await stat(fullPath);
    if (target.isFile()) return { type: 'file' };
    if (target.isDirectory()) return { type: 'directory' };
    return { type: 'other' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') {
      return { type: 'problem', problem: { path: fullPath, kind: 'symlink-loop', reason: 'symbolic link loop: the link resolves to itself' } };
    }
    if (code === 'ENOENT') {
      return { type: 'problem', problem: { path: fullPath, kind: 'unreadable', reason: 'broken symbolic link: its target does not exist' } };
    }
    return { type: 'problem', problem: { path: fullPath, kind: 'unreadable', reason: `cannot read (${(error as Error).message})` } };
  }
}
