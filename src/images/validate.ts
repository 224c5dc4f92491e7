// Cheap but complete check that a file is a usable image: the header is
// read (format, size, pixel limit), then the whole image is decoded at a
// tiny scale. JPEG shrink-on-load makes that decode cheap, yet it still
// reads every entropy-coded byte, so truncated files fail here rather than
// in the middle of training.
import sharp from 'sharp';
import { isAcceptedFormat, IMAGE_FORMATS } from './formats.js';
import { describeDecodeError, type ImageProblem } from './image-problems.js';

export interface ImageLimits {
  /** Refuse images declaring more pixels than this (decompression bombs). */
  maxPixels: number;
  /** Refuse files larger than this many bytes (they are read whole into memory). */
  maxFileBytes: number;
}

export interface ImageInfo {
  format: string;
  /** Size after EXIF orientation, as the image will be used. */
  width: number;
  height: number;
}

export type ImageCheck = ({ ok: true } & ImageInfo) | ({ ok: false } & ImageProblem);

// Stop at truncation, as PIL does by default; tolerate the harmless warnings
// (e.g. extraneous bytes between JPEG markers) that PIL also ignores.
const FAIL_ON = 'truncated' as const;

export async function checkImageBytes(bytes: Uint8Array, limits: ImageLimits): Promise<ImageCheck> {
  if (bytes.length === 0) return { ok: false, kind: 'empty-file', reason: 'empty file (0 bytes)' };
  if (bytes.length > limits.maxFileBytes) {
    return {
      ok: false,
      kind: 'file-too-large',
      reason: `file is ${bytes.length} bytes, over the limit of ${limits.maxFileBytes} bytes`,
    };
  }
  const options: sharp.SharpOptions = { failOn: FAIL_ON, limitInputPixels: limits.maxPixels, sequentialRead: true };
  let metadata: sharp.Metadata;
  try {
    metadata = await sharp(bytes, options).metadata();
  } catch (error) {
    return { ok: false, ...describeDecodeError(error, limits.maxPixels) };
  }
  if (!isAcceptedFormat(metadata.format)) {
    return {
      ok: false,
      kind: 'unsupported-format',
      reason: `unsupported image format '${metadata.format}' (accepted: ${IMAGE_FORMATS.join(', ')})`,
    };
  }
  const { width, height } = metadata.autoOrient;
  if (!width || !height) return { ok: false, kind: 'corrupt', reason: 'image declares no width or height' };
  try {
    await sharp(bytes, options).resize(4, 4, { fit: 'fill', fastShrinkOnLoad: true }).raw().toBuffer();
  } catch (error) {
    return { ok: false, ...describeDecodeError(error, limits.maxPixels) };
  }
  return { ok: true, format: metadata.format!, width, height };
}
