// Pixel geometry of the preprocessing, computed exactly as torchvision does
// (integer truncations and Python's round-half-to-even included), so that
// the same photo yields the same crop box here and in PyTorch.
import type { ResizeSpec, Size } from './transform-spec.js';
import { randomInt, uniform, type Rng } from './random.js';

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A centre crop: the part of the image kept, and where it lands in the output (non-zero when padding). */
export interface CropPlacement extends Box {
  padLeft: number;
  padTop: number;
}

/** torchvision `_compute_resized_output_size` for Resize(int, max_size) or an exact size. */
export function resizedSize(width: number, height: number, resize: ResizeSpec): Size {
  if (!('shorterSide' in resize)) return { width: resize.width, height: resize.height };
  const portrait = width <= height;
  const short = portrait ? width : height;
  const long = portrait ? height : width;
  let newShort = resize.shorterSide;
  // Python: int(size * long / short) with a true (correctly rounded) division, then truncation.
  let newLong = Math.trunc((newShort * long) / short);
  if (resize.maxLongerSide !== undefined && newLong > resize.maxLongerSide) {
    newShort = Math.trunc((resize.maxLongerSide * newShort) / newLong);
    newLong = resize.maxLongerSide;
  }
  return portrait ? { width: newShort, height: newLong } : { width: newLong, height: newShort };
}

/**
 * torchvision `center_crop`: pads symmetrically (extra pixel right/bottom)
 * when the image is smaller than the crop, then takes offsets
 * int(round((image - crop) / 2)).
 */
export function centerCropPlacement(imageWidth: number, imageHeight: number, crop: Size): CropPlacement {
  const [left, width, padLeft] = centerAxis(imageWidth, crop.width);
  const [top, height, padTop] = centerAxis(imageHeight, crop.height);
  return { left, top, width, height, padLeft, padTop };
}

function centerAxis(image: number, crop: number): [offset: number, kept: number, pad: number] {
  if (image >= crop) return [roundHalfToEven((image - crop) / 2), crop, 0];
  return [0, image, Math.floor((crop - image) / 2)];
}

/** Python 3's round(): halves go to the even neighbour (58.5 → 58, 59.5 → 60). */
export function roundHalfToEven(value: number): number {
  const floor = Math.floor(value);
  const diff = value - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * torchvision `RandomResizedCrop.get_params`: up to ten tries at a random
 * area fraction and log-uniform aspect ratio, else a centre crop clamped to
 * the ratio range.
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  scale: [number, number],
  ratio: [number, number],
  rng: Rng,
): Box {
  const area = width * height;
  const logRatio: [number, number] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * uniform(rng, scale[0], scale[1]);
    const aspectRatio = Math.exp(uniform(rng, logRatio[0], logRatio[1]));
    const w = roundHalfToEven(Math.sqrt(targetArea * aspectRatio));
    const h = roundHalfToEven(Math.sqrt(targetArea / aspectRatio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: randomInt(rng, 0, height - h + 1), left: randomInt(rng, 0, width - w + 1), width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(...ratio)) {
    w = width;
    h = roundHalfToEven(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    h = height;
    w = roundHalfToEven(h * Math.max(...ratio));
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), width: w, height: h };
}
