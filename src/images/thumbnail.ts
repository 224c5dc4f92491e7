// Small previews for the HTML report: upright (EXIF-rotated), fitted inside
// a square, alpha flattened onto white, encoded small.
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS } from './transform-spec.js';
import { toImageLoadError } from './image-problems.js';

export interface ThumbnailOptions {
  format?: 'jpeg' | 'webp';
  /** Encoder quality, 1–100. */
  quality?: number;
  maxPixels?: number;
}

/** A JPEG (default) or WebP whose longer side is at most `size` pixels; never enlarged. */
export async function makeThumbnail(
  input: string | Uint8Array,
  size = 160,
  options: ThumbnailOptions = {},
): Promise<Buffer> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`thumbnail size must be a positive integer, got ${size}`);
  const { format = 'jpeg', quality = 75, maxPixels = DEFAULT_MAX_PIXELS } = options;
  try {
    const image = sharp(input, { autoOrient: true, failOn: 'truncated', limitInputPixels: maxPixels })
      .resize(size, size, { fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb');
    return format === 'webp'
      ? await image.webp({ quality }).toBuffer()
      : await image.jpeg({ quality, mozjpeg: true }).toBuffer();
  } catch (error) {
    throw toImageLoadError(error, maxPixels, typeof input === 'string' ? input : undefined);
  }
}
