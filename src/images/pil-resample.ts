// Pillow's BILINEAR resampling (Resample.c), reproduced integer for integer:
// a triangle filter widened by the shrink factor (antialiasing), 22-bit
// fixed-point coefficients, horizontal pass first with a uint8 intermediate.
// Given the same decoded pixels (sharp's libjpeg-turbo and Pillow's decode
// JPEGs identically), the output equals PIL's Image.resize byte for byte.
//
// Only the requested output region is computed: PIL resizes the whole image
// and torchvision crops afterwards, but every output pixel depends only on
// its own coefficients, so computing just the crop gives the same bytes.
import type { Box } from './geometry.js';
import type { Size } from './transform-spec.js';

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const SATURATE = (1 << PRECISION_BITS) * 256;
const FILTER_SUPPORT = 1; // bilinear

/** Per output pixel: first input index, tap count, and fixed-point weights. */
interface Coefficients {
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array; // outputs × taps, row-major
  taps: number;
}

/** Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for outputs [from, from + length). */
function coefficients(inSize: number, outSize: number, from: number, length: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = FILTER_SUPPORT * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(length);
  const count = new Int32Array(length);
  const weights = new Int32Array(length * taps);
  const raw = new Float64Array(taps);
  const inverse = 1 / filterScale;
  for (let i = 0; i < length; i++) {
    const center = (from + i + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const distance = Math.abs((x + xmin - center + 0.5) * inverse);
      const w = distance < 1 ? 1 - distance : 0;
      raw[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0 ? raw[x]! / total : raw[x]!;
      weights[i * taps + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    first[i] = xmin;
    count[i] = xmax;
  }
  return { first, count, weights, taps };
}

function clip8(value: number): number {
  if (value >= SATURATE) return 255;
  if (value <= 0) return 0;
  return value >> PRECISION_BITS;
}

/** Packed RGB pixels (row-major, 3 bytes a pixel). */
export interface RgbImage {
  pixels: Uint8Array;
  width: number;
  height: number;
}

/**
 * Resizes `window` of `image` (PIL's crop then resize; the whole image by
 * default) to `outSize` as PIL would, and returns only `region` of the
 * result, as packed RGB.
 */
export function resizeRegionLikePil(
  image: RgbImage,
  outSize: Size,
  region: Box,
  window: Box = { left: 0, top: 0, width: image.width, height: image.height },
): Uint8Array {
  // A plain Uint8Array view: mixing Buffer and Uint8Array makes element access polymorphic (slow).
  const source = new Uint8Array(image.pixels.buffer, image.pixels.byteOffset, image.pixels.length);
  const inW = window.width;
  const inH = window.height;
  const sourceStride = image.width * 3;
  const sourceOrigin = window.top * sourceStride + window.left * 3;
  const out = new Uint8Array(region.width * region.height * 3);
  const needHorizontal = outSize.width !== inW;
  const needVertical = outSize.height !== inH;

  // Horizontal pass over just the rows the vertical pass will read.
  const vertical = needVertical ? coefficients(inH, outSize.height, region.top, region.height) : null;
  const rowsFirst = vertical ? vertical.first[0]! : region.top;
  const rowCount = vertical
    ? vertical.first[region.height - 1]! + vertical.count[region.height - 1]! - rowsFirst
    : region.height;
  let rows: Uint8Array;
  let rowsStride: number;

  if (needHorizontal) {
    const h = coefficients(inW, outSize.width, region.left, region.width);
    rowsStride = region.width * 3;
    rows = needVertical ? new Uint8Array(rowCount * rowsStride) : out;
    const { first, count, weights, taps } = h;
    for (let r = 0; r < rowCount; r++) {
      const inRow = sourceOrigin + (rowsFirst + r) * sourceStride;
      let o = r * rowsStride;
      for (let x = 0; x < region.width; x++) {
        let s0 = HALF;
        let s1 = HALF;
        let s2 = HALF;
        let p = inRow + first[x]! * 3;
        const k = x * taps;
        for (let t = 0, n = count[x]!; t < n; t++, p += 3) {
          const w = weights[k + t]!;
          s0 = (s0 + Math.imul(source[p]!, w)) | 0;
          s1 = (s1 + Math.imul(source[p + 1]!, w)) | 0;
          s2 = (s2 + Math.imul(source[p + 2]!, w)) | 0;
        }
        rows[o++] = clip8(s0);
        rows[o++] = clip8(s1);
        rows[o++] = clip8(s2);
      }
    }
    if (!needVertical) return out;
  } else {
    // No horizontal change: read the source directly, shifted to the region's columns.
    rows = source;
    rowsStride = sourceStride;
  }
  const columnOffset = needHorizontal ? 0 : sourceOrigin + region.left * 3;
  const rowBase = needHorizontal ? rowsFirst : 0;

  if (!vertical) {
    for (let y = 0; y < region.height; y++) {
      const from = (region.top + y - rowBase) * rowsStride + columnOffset;
      out.set(rows.subarray(from, from + region.width * 3), y * region.width * 3);
    }
    return out;
  }

  const { first, count, weights, taps } = vertical;
  const rowWidth = region.width * 3;
  for (let y = 0; y < region.height; y++) {
    const k = y * taps;
    const n = count[y]!;
    const start = (first[y]! - rowBase) * rowsStride + columnOffset;
    const o = y * rowWidth;
    for (let c = 0; c < rowWidth; c++) {
      let s = HALF;
      for (let t = 0, p = start + c; t < n; t++, p += rowsStride) s = (s + Math.imul(rows[p]!, weights[k + t]!)) | 0;
      out[o + c] = clip8(s);
    }
  }
  return out;
}
