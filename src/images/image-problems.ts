// Why an image cannot be used, as a stable category for code and a sentence
// for people. Shared by dataset validation and tensor loading.

export type ImageProblemKind =
  | 'empty-file'
  | 'not-an-image'
  | 'unsupported-format'
  | 'corrupt'
  | 'too-many-pixels'
  | 'file-too-large'
  | 'invalid-file-name'
  | 'symlink-loop'
  | 'already-scanned'
  | 'unreadable'
  | 'no-label';

export interface ImageProblem {
  kind: ImageProblemKind;
  reason: string;
}

/** An image that could not be read or decoded; `kind` says which category. */
export class ImageLoadError extends Error {
  override name = 'ImageLoadError';
  constructor(
    readonly kind: ImageProblemKind,
    readonly reason: string,
    readonly path?: string,
  ) {
    super(path ? `cannot use image ${path}: ${reason}` : `cannot use image: ${reason}`);
  }
}

/** Maps a sharp/libvips error to a category and a readable reason. */
export function describeDecodeError(error: unknown, maxPixels: number): ImageProblem {
  const message = error instanceof Error ? error.message : String(error);
  if (/exceeds pixel limit/i.test(message)) {
    return {
      kind: 'too-many-pixels',
      reason: `too many pixels: the image declares more than ${maxPixels} pixels (possible decompression bomb)`,
    };
  }
  if (/unsupported image format/i.test(message)) {
    return { kind: 'not-an-image', reason: 'not an image, or an image format that cannot be decoded' };
  }
  const detail = message.replace(/\s+/g, ' ').trim();
  return { kind: 'corrupt', reason: `truncated or corrupt image data (${detail})` };
}

/** Wraps any failure of the decoding pipeline into an ImageLoadError naming the file. */
export function toImageLoadError(error: unknown, maxPixels: number, path?: string): ImageLoadError {
  if (error instanceof ImageLoadError) return error;
  const problem = describeDecodeError(error, maxPixels);
  return new ImageLoadError(problem.kind, problem.reason, path);
}
