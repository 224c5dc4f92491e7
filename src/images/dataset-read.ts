// Reading and checking one candidate file: read once, the same bytes hashed
// and decoded; a check is remembered by content hash and limits.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { ScanOptions } from './dataset-types.js';
import type { ImageProblemKind } from './image-problems.js';
import { checkImageBytes, type ImageLimits } from './validate.js';

/** What a check result depends on: the file's content and the limits. */
export function checkKey(hash: string, limits: ImageLimits): string {
  return `${hash}:${limits.maxPixels}:${limits.maxFileBytes}`;
}

type CheckOutcome = { problem: { kind: ImageProblemKind; reason: string } } | { hash: string; format: string; width: number; height: number };

/** Reads the file once; the same bytes are hashed and decoded. */
export async function readAndCheck(file: string, limits: ImageLimits, memo: Pick<ScanOptions, 'knownChecks' | 'onChecked'>): Promise<CheckOutcome> {
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
