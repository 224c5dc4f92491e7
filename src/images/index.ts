// Public surface of the image library: dataset scanning and validation,
// preprocessing into model tensors, thumbnails.
export { scanDataset } from './dataset.js';
export { idFromFileName } from './dataset-folders.js';
export { DatasetError } from './dataset-error.js';
export { datasetSpecSchema, resolveDatasetSpec } from './dataset-spec.js';
export { CATS_VS_DOGS_RULE } from './label-rule.js';
export type { DatasetScan, DatasetImage, SkippedFile, SplitCounts, Split, ScanOptions } from './dataset-types.js';
export type { DatasetSpec, ResolvedDatasetSpec, DatasetLayout, FilenameDatasetSpec, FoldersDatasetSpec, CsvDatasetSpec } from './dataset-spec.js';
export type { LabelRule, ContainsLabelRule, RegexLabelRule } from './label-rule.js';
export { IMAGE_EXTENSIONS, IMAGE_FORMATS, hasImageExtension } from './formats.js';
export { checkImageBytes } from './validate.js';
export type { ImageCheck, ImageInfo, ImageLimits } from './validate.js';
export { ImageLoadError } from './image-problems.js';
export type { ImageProblemKind } from './image-problems.js';

export { loadImageTensor, loadImageTensorInto, normalizationTable } from './preprocess.js';
export type { LoadTensorOptions } from './preprocess.js';
export {
  resolveTransform,
  transformSpecSchema,
  tensorLength,
  fixedOutputSize,
  TransformSpecError,
  IMAGENET_MEAN,
  IMAGENET_STD,
  DEFAULT_MAX_PIXELS,
} from './transform-spec.js';
export type {
  TransformSpec,
  TransformSpecInput,
  ModelInputShape,
  TensorLayout,
  ResizeSpec,
  AugmentSpec,
  RandomResizedCropSpec,
  Size,
} from './transform-spec.js';
export { makeThumbnail } from './thumbnail.js';
export type { ThumbnailOptions } from './thumbnail.js';
export { createRng, deriveSeed } from './random.js';
export type { Rng } from './random.js';
