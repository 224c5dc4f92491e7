// The types of a dataset scan: what it finds (images, skipped files, counts)
// and, inside the scan, the candidates collected before validation.
import type { ResolvedDatasetSpec } from './dataset-spec.js';
import type { ImageProblemKind } from './image-problems.js';
import type { ImageCheck } from './validate.js';

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

/** A file to validate, before its content is known. */
export interface Candidate {
  path: string;
  /** Path relative to its dataset root: the split is keyed on it, so it survives moving the dataset. */
  key: string;
  group: 'pool' | 'val' | 'test';
  className: string | null;
  id: number | string | null;
}

/** Everything found before validation. */
export interface Collected {
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
