// Image file → normalised float tensor, reproducing torchvision's
// Resize / CenterCrop / ToTensor / Normalize on PIL images. sharp decodes
// (EXIF orientation, colour model to 8-bit RGB, alpha dropped); Pillow's
// bilinear resize is reproduced exactly on just the cropped region (or,
// with the 'libvips' resampler, sharp resizes and crops in its pipeline);
// a table-driven loop writes the float tensor in place.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { centerCropPlacement, randomResizedCropBox, resizedSize, type Box } from './geometry.js';
import { resizeRegionLikePil, type RgbImage } from './pil-resample.js';
import { ImageLoadError, toImageLoadError } from './image-problems.js';
import type { Rng } from './random.js';
import { fixedOutputSize, type Size, type TransformSpec } from './transform-spec.js';


export interface LoadTensorOptions {
  /**
   * Random source for training-time augmentation (spec.augment). Without
   * one, the evaluation transform is applied, whatever spec.augment says.
   */
  rng?: Rng;
}

/** Decodes, transforms and normalises one image into a new tensor (C×H×W or H×W×C). */
export async function loadImageTensor(
  input: string | Uint8Array,
  spec: TransformSpec,
  options: LoadTensorOptions = {},
): Promise<Float32Array> {
  const size = outputSizeOrThrow(spec);
  const tensor = new Float32Array(3 * size.width * size.height);
  await loadImageTensorInto(input, spec, tensor, 0, options);
  return tensor;
}

/**
 * Like loadImageTensor, but writes into `target` at `offset` (in floats), so
 * that a batch buffer [N, ...] is filled in place: image i at offset
 * i × tensorLength(spec).
 */
export async function loadImageTensorInto(
  input: string | Uint8Array,
  spec: TransformSpec,
  target: Float32Array,
  offset = 0,
  options: LoadTensorOptions = {},
): Promise<void> {
  const size = outputSizeOrThrow(spec);
  const length = 3 * size.width * size.height;
  if (!Number.isInteger(offset) || offset < 0 || offset + length > target.length) {
    throw new RangeError(
      `tensor of ${length} floats does not fit in a target of ${target.length} floats at offset ${offset}`,
    );
  }
  const path = typeof input === 'string' ? input : undefined;
  let bytes: Uint8Array;
  try {
    bytes = typeof input === 'string' ? await readFile(input) : input;
  } catch (error) {
    throw new ImageLoadError('unreadable', `cannot read file (${(error as Error).message})`, path);
  }
  if (bytes.length === 0) throw new ImageLoadError('empty-file', 'empty file (0 bytes)', path);

  let crop: DecodedCrop;
  try {
    crop = await decodeCrop(bytes, spec, size, options.rng);
  } catch (error) {
    throw toImageLoadError(error, spec.maxPixels, path);
  }
  writeNormalized(crop, size, spec, target, offset);
}

/** Picks the random-resized-crop window once the oriented image size is known. */
type RandomWindow = (width: number, height: number) => Box;

/** The RGB pixels sharp produced, and where they go in the output tensor. */
interface DecodedCrop {
  pixels: Uint8Array; // packed RGB, row-major
  width: number;
  height: number;
  padLeft: number;
  padTop: number;
  flip: boolean;
}

function outputSizeOrThrow(spec: TransformSpec): Size {
  const size = fixedOutputSize(spec);
  if (!size) throw new RangeError('transform output size varies per image: resolve it with resolveTransform first');
  return size;
}

function inputOptions(spec: TransformSpec): sharp.SharpOptions {
  return {
    failOn: 'truncated',
    limitInputPixels: spec.maxPixels,
    autoOrient: spec.autoOrient,
    ignoreIcc: spec.iccProfiles === 'ignore',
    sequentialRead: true,
  };
}

async function decodeCrop(bytes: Uint8Array, spec: TransformSpec, size: Size, rng: Rng | undefined): Promise<DecodedCrop> {
  const augment = rng ? spec.augment : null;
  const randomCrop = augment?.randomResizedCrop;
  let drawn: Box | undefined;
  // Drawn once (memoised), whichever path ends up decoding.
  const randomWindow: RandomWindow | null = randomCrop
    ? (width, height) => (drawn ??= randomResizedCropBox(width, height, randomCrop.scale, randomCrop.ratio, rng!))
    : null;
  const crop =
    spec.resampler === 'libvips'
      ? await libvipsCrop(bytes, spec, size, randomWindow)
      : await pilCrop(bytes, spec, size, randomWindow);
  // Drawn after the crop, as torchvision's RandomHorizontalFlip follows RandomResizedCrop.
  crop.flip = augment ? rng!() < augment.horizontalFlip : false;
  return crop;
}

/** Full decode to RGB (alpha dropped, as PIL's convert('RGB')), then Pillow's exact bilinear resize. */
async function pilCrop(bytes: Uint8Array, spec: TransformSpec, size: Size, randomWindow: RandomWindow | null): Promise<DecodedCrop> {
  const { data, info } = await sharp(bytes, inputOptions(spec))
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 colour channels after conversion, got ${info.channels}`);
  const image: RgbImage = { pixels: data, width: info.width, height: info.height };

  if (randomWindow) {
    const window = randomWindow(image.width, image.height);
    const pixels = resizeRegionLikePil(image, size, { left: 0, top: 0, ...size }, window);
    return { pixels, ...size, padLeft: 0, padTop: 0, flip: false };
  }
  const resized = spec.resize ? resizedSize(image.width, image.height, spec.resize) : image;
  const crop = spec.centerCrop
    ? centerCropPlacement(resized.width, resized.height, spec.centerCrop)
    : { left: 0, top: 0, width: resized.width, height: resized.height, padLeft: 0, padTop: 0 };
  const pixels = resizeRegionLikePil(image, { width: resized.width, height: resized.height }, crop);
  return { pixels, width: crop.width, height: crop.height, padLeft: crop.padLeft, padTop: crop.padTop, flip: false };
}

/**
 * libvips does resize and crop inside the decoding pipeline (and may shrink
 * JPEGs while decoding): faster on large photos, within about a grey level
 * of PIL when shrinking. Its enlargement is offset by half a pixel from
 * PIL's, so images that need enlarging take the PIL path.
 */
async function libvipsCrop(bytes: Uint8Array, spec: TransformSpec, size: Size, randomWindow: RandomWindow | null): Promise<DecodedCrop> {
  const meta = await sharp(bytes, inputOptions(spec)).metadata();
  const oriented = spec.autoOrient ? meta.autoOrient : { width: meta.width, height: meta.height };
  if (!oriented.width || !oriented.height) throw new Error('image has no dimensions');

  const window = randomWindow ? randomWindow(oriented.width, oriented.height) : { left: 0, top: 0, ...oriented };
  const resized = randomWindow ? size : spec.resize ? resizedSize(oriented.width, oriented.height, spec.resize) : oriented;
  // Sharp premultiplies alpha while resizing; PIL drops it first.
  if (resized.width > window.width || resized.height > window.height || meta.hasAlpha) {
    return pilCrop(bytes, spec, size, randomWindow);
  }

  let image = sharp(bytes, inputOptions(spec));
  if (!isWhole(window, oriented)) image = image.extract(window);
  if (resized.width !== window.width || resized.height !== window.height) {
    // 'linear' in libvips is, like PIL's BILINEAR, a triangle filter widened
    // by the shrink factor (antialiased), not a 2×2 interpolation.
    image = image.resize(resized.width, resized.height, {
      fit: 'fill',
      kernel: 'linear',
      fastShrinkOnLoad: spec.fastShrinkOnLoad,
    });
  }
  let placement = { padLeft: 0, padTop: 0 };
  if (!randomWindow && spec.centerCrop) {
    const crop = centerCropPlacement(resized.width, resized.height, spec.centerCrop);
    if (!isWhole(crop, resized)) image = image.extract(crop);
    placement = crop;
  }
  const { data, info } = await image.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 colour channels after conversion, got ${info.channels}`);
  return { pixels: data, width: info.width, height: info.height, ...placement, flip: false };
}

function isWhole(box: Box | Size, size: Size): boolean {
  const left = 'left' in box ? box.left : 0;
  const top = 'top' in box ? box.top : 0;
  return left === 0 && top === 0 && box.width === size.width && box.height === size.height;
}

// ToTensor then Normalize, as float32 operations in torch: ((v / 255) - mean) / std,
// each step rounded to float32. A 3×256 table reproduces it bit for bit.
const normalizationTables = new Map<string, Float32Array>();

export function normalizationTable(mean: readonly number[], std: readonly number[]): Float32Array {
  const key = `${mean.join(',')}/${std.join(',')}`;
  let table = normalizationTables.get(key);
  if (!table) {
    table = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      const m = Math.fround(mean[c]!);
      const s = Math.fround(std[c]!);
      for (let v = 0; v < 256; v++) {
        table[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
      }
    }
    if (normalizationTables.size > 64) normalizationTables.clear();
    normalizationTables.set(key, table);
  }
  return table;
}

/** Uint8 RGB (HWC) → normalised float32, into the target in the requested layout, mirrored and padded as needed. */
function writeNormalized(crop: DecodedCrop, size: Size, spec: TransformSpec, target: Float32Array, offset: number): void {
  const table = normalizationTable(spec.mean, spec.std);
  const { pixels, width, height, padLeft, padTop, flip } = crop;
  const outW = size.width;
  const plane = outW * size.height;
  const nchw = spec.layout === 'NCHW';

  if (width !== outW || height !== size.height) {
    // Padding (image smaller than the crop): black, normalised like any pixel.
    const zero = [table[0]!, table[256]!, table[512]!];
    if (nchw) {
      for (let c = 0; c < 3; c++) target.fill(zero[c]!, offset + c * plane, offset + (c + 1) * plane);
    } else {
      for (let i = offset, end = offset + 3 * plane; i < end; i += 3) {
        target[i] = zero[0]!;
        target[i + 1] = zero[1]!;
        target[i + 2] = zero[2]!;
      }
    }
  }

  for (let y = 0; y < height; y++) {
    let s = y * width * 3;
    const rowStart = (padTop + y) * outW;
    // Mirroring the whole output (padding included), as a flip after the crop does.
    const firstX = flip ? outW - 1 - padLeft : padLeft;
    const step = flip ? -1 : 1;
    if (nchw) {
      const d = offset + rowStart + firstX;
      const g = d + plane;
      const b = d + 2 * plane;
      for (let x = 0, k = 0; x < width; x++, k += step, s += 3) {
        target[d + k] = table[pixels[s]!]!;
        target[g + k] = table[256 + pixels[s + 1]!]!;
        target[b + k] = table[512 + pixels[s + 2]!]!;
      }
    } else {
      let d = offset + (rowStart + firstX) * 3;
      const step3 = step * 3;
      for (let x = 0; x < width; x++, d += step3, s += 3) {
        target[d] = table[pixels[s]!]!;
        target[d + 1] = table[256 + pixels[s + 1]!]!;
        target[d + 2] = table[512 + pixels[s + 2]!]!;
      }
    }
  }
}
