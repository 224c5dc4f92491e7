// The declarative description of how an image file becomes a model input
// tensor, its JSON Schema, and the resolution of defaults against a model's
// declared input. The defaults reproduce torchvision's ordinary evaluation
// preprocessing: Resize(256), CenterCrop(224), ToTensor, Normalize(ImageNet).
import { ExpectedFailure } from '../failure.js';

export type TensorLayout = 'NCHW' | 'NHWC';

export interface Size {
  width: number;
  height: number;
}

/** Shorter side to `shorterSide` keeping the aspect ratio (torchvision `Resize(int)`), or an exact size. */
export type ResizeSpec = { shorterSide: number; maxLongerSide?: number } | Size;

/** torchvision `RandomResizedCrop`: a random area fraction and aspect ratio, then resized to the output size. */
export interface RandomResizedCropSpec {
  scale: [number, number];
  ratio: [number, number];
}

export interface AugmentSpec {
  /** Probability of a left–right mirror (torchvision `RandomHorizontalFlip(p)`). */
  horizontalFlip: number;
  /** Replaces resize + centre crop at training time when set. */
  randomResizedCrop: RandomResizedCropSpec | null;
}

export type RgbTriple = [number, number, number];

/** A fully resolved transform: every field set. */
export interface TransformSpec {
  resize: ResizeSpec | null;
  centerCrop: Size | null;
  mean: RgbTriple;
  std: RgbTriple;
  layout: TensorLayout;
  /** Apply the EXIF orientation before anything else. */
  autoOrient: boolean;
  /** 'ignore' reads pixel values as stored, as PIL does; 'apply' converts through an embedded ICC profile to sRGB. */
  iccProfiles: 'ignore' | 'apply';
  /**
   * 'pil': full decode, then Pillow's bilinear resize reproduced exactly (same bytes as torchvision + PIL).
   * 'libvips': resize inside sharp's decoding pipeline; faster on large photos, about a grey level from PIL.
   */
  resampler: 'pil' | 'libvips';
  /** With the libvips resampler: let the JPEG decoder shrink by 2/4/8 while decoding (faster, a little less faithful). */
  fastShrinkOnLoad: boolean;
  /** Refuse images with more pixels than this (decompression bombs). */
  maxPixels: number;
  /** Training-time augmentation; applied only when a random source is passed to the loader. */
  augment: AugmentSpec | null;
}

/** What a pipeline file may declare: every field optional, sizes may be plain integers. */
export interface TransformSpecInput {
  resize?: number | ResizeSpec | null;
  centerCrop?: number | Size | null;
  mean?: RgbTriple;
  std?: RgbTriple;
  layout?: TensorLayout;
  autoOrient?: boolean;
  iccProfiles?: 'ignore' | 'apply';
  resampler?: 'pil' | 'libvips';
  fastShrinkOnLoad?: boolean;
  maxPixels?: number;
  augment?: {
    horizontalFlip?: number;
    /** Use RandomResizedCrop instead of resize + centre crop (default true). */
    randomResizedCrop?: boolean;
    scale?: [number, number];
    ratio?: [number, number];
  };
}

/** The input a model declares; unknown (dynamic) dimensions as null or a non-positive number. */
export interface ModelInputShape {
  layout?: TensorLayout;
  height?: number | null;
  width?: number | null;
}

export const IMAGENET_MEAN: RgbTriple = [0.485, 0.456, 0.406];
export const IMAGENET_STD: RgbTriple = [0.229, 0.224, 0.225];
/** PIL refuses images above twice its MAX_IMAGE_PIXELS (DecompressionBombError); same limit here. */
export const DEFAULT_MAX_PIXELS = 2 * 89_478_485;
export const DEFAULT_CROP = 224;
/** torchvision and timm resize to crop / 0.875 before the centre crop (224 → 256). */
export const CROP_FRACTION = 0.875;
export const DEFAULT_RANDOM_RESIZED_CROP: RandomResizedCropSpec = { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] };

export class TransformSpecError extends ExpectedFailure {
  override name = 'TransformSpecError';
  readonly reason = 'parameters';
}

const sizeSchema = (what: string) => ({
  oneOf: [
    { type: 'integer', minimum: 1, description: `Square ${what}: width and height in pixels.` },
    {
      type: 'object',
      additionalProperties: false,
      required: ['width', 'height'],
      properties: {
        width: { type: 'integer', minimum: 1, description: 'Width in pixels.' },
        height: { type: 'integer', minimum: 1, description: 'Height in pixels.' },
      },
    },
  ],
});

// No schema default: validation fills defaults into the parameters, and a
// filled-in ImageNet value would override the backbone's own statistics
// (images.transform takes those first). resolveTransform falls back to ImageNet's.
const rgbSchema = (description: string, exclusiveMinimum?: number) => ({
  type: 'array',
  description,
  minItems: 3,
  maxItems: 3,
  items: exclusiveMinimum === undefined ? { type: 'number' } : { type: 'number', exclusiveMinimum },
});

const rangeSchema = (description: string, defaults: [number, number]) => ({
  type: 'array',
  description,
  minItems: 2,
  maxItems: 2,
  items: { type: 'number', exclusiveMinimum: 0 },
  default: defaults,
});

/** JSON Schema (draft-07) of TransformSpecInput, for ajv. */
export const transformSpecSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'tlpipe:images/transform-spec',
  title: 'Image transform',
  description:
    'How an image file becomes the model input tensor. Defaults reproduce torchvision evaluation preprocessing: ' +
    'shorter side to 256, centre crop 224, scale to [0, 1], normalise with the ImageNet mean and std. ' +
    'Crop and resize default to the model input size when the model declares one.',
  type: 'object',
  additionalProperties: false,
  properties: {
    resize: {
      description:
        'Resize before cropping: an integer resizes the shorter side to that many pixels keeping the aspect ratio ' +
        '(the longer side is truncated, as torchvision does); {width, height} resizes to exactly that size; null skips resizing. ' +
        'Default: the crop size / 0.875 on the shorter side (256 for a 224 crop).',
      oneOf: [
        { type: 'null' },
        { type: 'integer', minimum: 1 },
        {
          type: 'object',
          additionalProperties: false,
          required: ['shorterSide'],
          properties: {
            shorterSide: { type: 'integer', minimum: 1, description: 'Target length of the shorter side.' },
            maxLongerSide: {
              type: 'integer',
              minimum: 2,
              description: 'Cap on the longer side (torchvision max_size); must exceed shorterSide.',
            },
          },
        },
        sizeSchema('resize').oneOf[1],
      ],
    },
    centerCrop: {
      description:
        'Centre crop after resizing (an integer for a square crop), padded with black when the image is smaller; ' +
        'null for no crop. Default: the model input size, else 224.',
      oneOf: [{ type: 'null' }, ...sizeSchema('crop').oneOf],
    },
    mean: rgbSchema(
      "Per-channel mean (R, G, B) subtracted after scaling pixels to [0, 1]. Default: the backbone's own (a catalogue model's), else ImageNet's [0.485, 0.456, 0.406].",
    ),
    std: rgbSchema(
      "Per-channel standard deviation (R, G, B) dividing after the mean is subtracted. Default: the backbone's own, else ImageNet's [0.229, 0.224, 0.225].",
      0,
    ),
    layout: {
      enum: ['NCHW', 'NHWC'],
      description: 'Tensor layout: channels first (PyTorch exports) or channels last (TensorFlow exports). Default: the model input layout, else NCHW.',
    },
    autoOrient: {
      type: 'boolean',
      default: true,
      description: 'Rotate and mirror by the EXIF orientation tag first, so that phone photos come out upright.',
    },
    iccProfiles: {
      enum: ['ignore', 'apply'],
      default: 'ignore',
      description:
        "'ignore' reads stored pixel values as PIL (and so most training code) does; 'apply' converts through an embedded ICC profile to sRGB. CMYK is always converted.",
    },
    resampler: {
      enum: ['pil', 'libvips'],
      default: 'pil',
      description:
        "'pil': decode at full size, then Pillow's bilinear resize reproduced exactly (the same tensors as torchvision with PIL). " +
        "'libvips': resize while decoding; faster on large photos, within about one grey level of PIL.",
    },
    fastShrinkOnLoad: {
      type: 'boolean',
      default: false,
      description:
        "With resampler 'libvips': let the JPEG decoder shrink large photos by 2, 4 or 8 while decoding (faster, a little further from PIL).",
    },
    maxPixels: {
      type: 'integer',
      minimum: 1,
      default: DEFAULT_MAX_PIXELS,
      description: 'Refuse images declaring more pixels than this (decompression bombs). Default: PIL limit, 178956970.',
    },
    augment: {
      type: 'object',
      additionalProperties: false,
      description:
        'Training-time augmentation, applied only where a seeded random source is given (never at evaluation). ' +
        'An empty object gives the usual RandomResizedCrop + RandomHorizontalFlip(0.5).',
      properties: {
        horizontalFlip: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          default: 0.5,
          description: 'Probability of a left-right mirror.',
        },
        randomResizedCrop: {
          type: 'boolean',
          default: true,
          description:
            'Crop a random fraction of the area (scale) with a random aspect ratio (ratio), resized to the output size, instead of resize + centre crop.',
        },
        scale: rangeSchema('RandomResizedCrop: range of the crop area as a fraction of the image area.', DEFAULT_RANDOM_RESIZED_CROP.scale),
        ratio: rangeSchema('RandomResizedCrop: range of the crop aspect ratio (width / height), sampled log-uniformly.', DEFAULT_RANDOM_RESIZED_CROP.ratio),
      },
    },
  },
} as const;

/**
 * Fills in every default and checks consistency with the model input.
 * Throws TransformSpecError with a message naming the field to change.
 */
export function resolveTransform(partial: TransformSpecInput = {}, modelInput?: ModelInputShape): TransformSpec {
  const modelSize = knownModelSize(modelInput);
  const layout = resolveLayout(partial.layout, modelInput?.layout);

  let centerCrop: Size | null;
  if (partial.centerCrop === undefined) {
    centerCrop = modelSize ?? { width: DEFAULT_CROP, height: DEFAULT_CROP };
  } else {
    centerCrop = partial.centerCrop === null ? null : toSize(partial.centerCrop, 'centerCrop');
  }

  let resize: ResizeSpec | null;
  if (partial.resize === undefined) {
    if (centerCrop) {
      resize = { shorterSide: Math.floor(Math.max(centerCrop.width, centerCrop.height) / CROP_FRACTION) };
    } else if (modelSize) {
      resize = { ...modelSize };
    } else {
      resize = { shorterSide: Math.floor(DEFAULT_CROP / CROP_FRACTION) };
    }
  } else {
    resize = toResize(partial.resize);
  }

  const spec: TransformSpec = {
    resize,
    centerCrop,
    mean: toTriple(partial.mean ?? IMAGENET_MEAN, 'mean', false),
    std: toTriple(partial.std ?? IMAGENET_STD, 'std', true),
    layout,
    autoOrient: partial.autoOrient ?? true,
    iccProfiles: partial.iccProfiles ?? 'ignore',
    resampler: partial.resampler ?? 'pil',
    fastShrinkOnLoad: partial.fastShrinkOnLoad ?? false,
    maxPixels: partial.maxPixels ?? DEFAULT_MAX_PIXELS,
    augment: resolveAugment(partial.augment),
  };
  if (!Number.isInteger(spec.maxPixels) || spec.maxPixels < 1) {
    throw new TransformSpecError(`transform.maxPixels must be a positive integer, got ${String(partial.maxPixels)}`);
  }

  const size = fixedOutputSize(spec);
  if (!size) {
    throw new TransformSpecError(
      'transform gives tensors whose size depends on each image (resize by shorter side, no crop): ' +
        'set centerCrop, or resize to an exact {width, height}',
    );
  }
  if (modelSize && (size.width !== modelSize.width || size.height !== modelSize.height)) {
    throw new TransformSpecError(
      `transform produces ${size.width}x${size.height} images but the model expects ${modelSize.width}x${modelSize.height}: ` +
        'set centerCrop (or resize) to the model input size, or leave them out to use it',
    );
  }
  return spec;
}

/** Width and height of every tensor this transform produces, or null when it varies per image. */
export function fixedOutputSize(spec: Pick<TransformSpec, 'resize' | 'centerCrop'>): Size | null {
  if (spec.centerCrop) return spec.centerCrop;
  if (spec.resize && 'width' in spec.resize) return { width: spec.resize.width, height: spec.resize.height };
  return null;
}

/** Number of floats in one image tensor (3 × height × width). */
export function tensorLength(spec: Pick<TransformSpec, 'resize' | 'centerCrop'>): number {
  const size = fixedOutputSize(spec);
  if (!size) throw new TransformSpecError('transform output size varies per image: set centerCrop');
  return 3 * size.width * size.height;
}

function knownModelSize(modelInput: ModelInputShape | undefined): Size | null {
  const { width, height } = modelInput ?? {};
  if (typeof width === 'number' && typeof height === 'number' && width > 0 && height > 0) return { width, height };
  return null;
}

function resolveLayout(requested: TensorLayout | undefined, model: TensorLayout | undefined): TensorLayout {
  for (const value of [requested, model]) {
    if (value !== undefined && value !== 'NCHW' && value !== 'NHWC') {
      throw new TransformSpecError(`transform.layout must be 'NCHW' or 'NHWC', got ${JSON.stringify(value)}`);
    }
  }
  if (requested && model && requested !== model) {
    throw new TransformSpecError(
      `transform.layout is ${requested} but the model input is ${model}: remove transform.layout to follow the model`,
    );
  }
  return requested ?? model ?? 'NCHW';
}

function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TransformSpecError(`transform.${field} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function toSize(value: number | Size, field: string): Size {
  if (typeof value === 'number') {
    const side = positiveInteger(value, field);
    return { width: side, height: side };
  }
  return { width: positiveInteger(value?.width, `${field}.width`), height: positiveInteger(value?.height, `${field}.height`) };
}

function toResize(value: number | ResizeSpec | null): ResizeSpec | null {
  if (value === null) return null;
  if (typeof value === 'number') return { shorterSide: positiveInteger(value, 'resize') };
  if ('shorterSide' in value) {
    const shorterSide = positiveInteger(value.shorterSide, 'resize.shorterSide');
    if (value.maxLongerSide === undefined) return { shorterSide };
    const maxLongerSide = positiveInteger(value.maxLongerSide, 'resize.maxLongerSide');
    if (maxLongerSide <= shorterSide) {
      throw new TransformSpecError(
        `transform.resize.maxLongerSide (${maxLongerSide}) must be greater than shorterSide (${shorterSide})`,
      );
    }
    return { shorterSide, maxLongerSide };
  }
  return toSize(value, 'resize');
}

function toTriple(value: unknown, field: string, mustBePositive: boolean): RgbTriple {
  if (!Array.isArray(value) || value.length !== 3 || value.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new TransformSpecError(`transform.${field} must be three numbers (R, G, B), got ${JSON.stringify(value)}`);
  }
  if (mustBePositive && value.some((v) => v <= 0)) {
    throw new TransformSpecError(`transform.${field} values must be greater than 0, got ${JSON.stringify(value)}`);
  }
  return [value[0], value[1], value[2]];
}

function toRange(value: unknown, field: string): [number, number] {
  if (!Array.isArray(value) || value.length !== 2 || value.some((v) => typeof v !== 'number' || !(v > 0))) {
    throw new TransformSpecError(`transform.${field} must be two positive numbers [min, max], got ${JSON.stringify(value)}`);
  }
  if (value[0] > value[1]) {
    throw new TransformSpecError(`transform.${field} must be [min, max] with min <= max, got ${JSON.stringify(value)}`);
  }
  return [value[0], value[1]];
}

function resolveAugment(input: TransformSpecInput['augment']): AugmentSpec | null {
  if (input === undefined || input === null) return null;
  const horizontalFlip = input.horizontalFlip ?? 0.5;
  if (typeof horizontalFlip !== 'number' || !(horizontalFlip >= 0 && horizontalFlip <= 1)) {
    throw new TransformSpecError(
      `transform.augment.horizontalFlip must be a probability between 0 and 1, got ${JSON.stringify(input.horizontalFlip)}`,
    );
  }
  const randomResizedCrop =
    input.randomResizedCrop === false
      ? null
      : {
          scale: toRange(input.scale ?? DEFAULT_RANDOM_RESIZED_CROP.scale, 'augment.scale'),
          ratio: toRange(input.ratio ?? DEFAULT_RANDOM_RESIZED_CROP.ratio, 'augment.ratio'),
        };
  return { horizontalFlip, randomResizedCrop };
}
