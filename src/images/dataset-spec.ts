// The declarative description of an image dataset (where the images are,
// how they are labelled, how validation is chosen), its JSON Schema, and
// the resolution of defaults and relative paths.
import path from 'node:path';
import { CATS_VS_DOGS_RULE, compileLabelRule, LabelRuleError, type LabelRule } from './label-rule.js';
import { DEFAULT_MAX_PIXELS } from './transform-spec.js';
import { DatasetError } from './dataset-error.js';

export type DatasetLayout = 'filename' | 'folders' | 'csv' | 'auto';

interface CommonDatasetSpec {
  /** Fraction of each class held out for validation when no validation set is given (default 0.2). */
  valFraction?: number;
  /** Seed of the validation split (default 0). */
  seed?: number;
  /** Folder of unlabelled images to predict; ids from file names ("123.jpg" → 123). */
  test?: string;
  /** Refuse images declaring more pixels than this (default 178956970, PIL's limit). */
  maxPixels?: number;
  /** Refuse files larger than this many bytes (default 256 MiB). */
  maxFileBytes?: number;
}

/** Kaggle style: one folder of images, the class read from each file name. */
export interface FilenameDatasetSpec extends CommonDatasetSpec {
  layout: 'filename';
  train: string;
  /** Optional validation folder, labelled by the same rule. */
  val?: string;
  /** Default: the cats-vs-dogs rule ("cat" in the name → cat, else dog). */
  labelRule?: LabelRule;
}

/** One sub-folder per class (`train/ants/*.jpg`), as torchvision's ImageFolder. */
export interface FoldersDatasetSpec extends CommonDatasetSpec {
  layout: 'folders';
  train: string;
  /** Optional validation folder with the same class sub-folders. */
  val?: string;
  /** Class folders to use, in class-index order; default every sub-folder, sorted by name. */
  classes?: string[];
}

/** A CSV manifest with a header row and columns `path` and `label` (paths relative to the CSV). */
export interface CsvDatasetSpec extends CommonDatasetSpec {
  layout: 'csv';
  manifest: string;
  /** Optional second manifest for validation. */
  valManifest?: string;
  /** Class names in class-index order; default every label found, sorted (numerically when all are integers). */
  classes?: string[];
}

/** Any of the layouts above, recognised from the folder (src/images/layout-detect.ts). */
export interface AutoDatasetSpec extends Omit<CommonDatasetSpec, 'test'> {
  layout: 'auto';
  root: string;
  /** Used when the layout found labels images by file name (default: the file name's leading letters). */
  labelRule?: LabelRule;
  /** Used when the layout found has class folders or a manifest. */
  classes?: string[];
  /** Where to download the dataset from when `root` does not exist (a zip archive). */
  source?: { url: string; size?: number; sha256?: string };
}

export type ConcreteDatasetSpec = FilenameDatasetSpec | FoldersDatasetSpec | CsvDatasetSpec;
export type DatasetSpec = ConcreteDatasetSpec | AutoDatasetSpec;

interface ResolvedCommon {
  valFraction: number;
  seed: number;
  test: string | null;
  maxPixels: number;
  maxFileBytes: number;
}

/** A spec with every default filled in and every path absolute. */
export type ResolvedDatasetSpec = ResolvedCommon &
  (
    | { layout: 'filename'; train: string; val: string | null; labelRule: LabelRule }
    | { layout: 'folders'; train: string; val: string | null; classes: string[] | null }
    | { layout: 'csv'; manifest: string; valManifest: string | null; classes: string[] | null }
  );

export const DEFAULT_VAL_FRACTION = 0.2;
export const DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024;

const folder = (description: string) => ({ type: 'string', minLength: 1, description });
const classList = (description: string) => ({
  type: 'array',
  items: { type: 'string', minLength: 1 },
  minItems: 1,
  uniqueItems: true,
  description,
});

const labelRuleSchema = {
  description:
    "How a file name gives its class. Default: {type: contains, classes: [cat, dog], otherwise: dog}, the Kaggle Dogs vs. Cats rule.",
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'classes'],
      properties: {
        type: { const: 'contains' },
        classes: classList('Class names in class-index order; the first one the file name contains is its class.'),
        otherwise: {
          type: 'string',
          minLength: 1,
          description: 'Class of a file name containing none of the names (one of classes); without it such files are skipped.',
        },
        ignoreCase: { type: 'boolean', description: 'Match regardless of case (default false).' },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'pattern'],
      properties: {
        type: { const: 'regex' },
        pattern: {
          type: 'string',
          minLength: 1,
          description: 'JavaScript regular expression tested against the file name; a capture group holds the class name, e.g. "^([a-z]+)_" for "ant_001.jpg".',
        },
        flags: { type: 'string', pattern: '^[imsu]*$', description: 'RegExp flags, e.g. "i".' },
        group: {
          description: 'Capture group holding the class name: its number or name (default: the group named "label", else 1).',
          oneOf: [
            { type: 'integer', minimum: 0 },
            { type: 'string', minLength: 1 },
          ],
        },
        classes: classList('Allowed class names in class-index order (default: every captured name, sorted).'),
      },
    },
  ],
};

/** Fields allowed only with some layouts; `false` rejects them elsewhere. */
const onlyFor = (layout: DatasetLayout, required: string[], forbidden: string[]) => ({
  if: { type: 'object', properties: { layout: { const: layout } } },
  then: {
    type: 'object',
    required,
    // `true` entries declare the required names here too (ajv strictRequired).
    properties: Object.fromEntries([...required.map((name) => [name, true]), ...forbidden.map((name) => [name, false])]),
  },
});

/** JSON Schema (draft-07) of DatasetSpec, for ajv. */
export const datasetSpecSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'tlpipe:images/dataset-spec',
  title: 'Image dataset',
  description:
    'Where the images are and how they are labelled. Relative paths are relative to the pipeline file. ' +
    'Unreadable images are skipped and reported, not fatal. Files whose extension is not an image type, and hidden files, are ignored.',
  type: 'object',
  additionalProperties: false,
  required: ['layout'],
  properties: {
    layout: {
      enum: ['filename', 'folders', 'csv', 'auto'],
      description:
        "'filename': one folder, the class read from each file name (Kaggle). " +
        "'folders': one sub-folder per class (train/ants/*.jpg). 'csv': a manifest with columns path,label. " +
        "'auto': recognise the layout of the folder 'root' (train/<class>/ with optional val/ and test/, Kaggle's train/ and test1/, PetImages/<class>/, a CSV manifest, or class folders with no split).",
    },
    root: folder("The dataset folder whose layout is recognised (layout 'auto'); relative to the project folder."),
    source: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description:
        "A zip archive to download and extract into root when root does not exist (layout 'auto'). `tlpipe run` asks first in a terminal; elsewhere it needs --download.",
      properties: {
        url: { type: 'string', pattern: '^https?://', description: 'Where the archive is published.' },
        size: { type: 'integer', minimum: 1, description: 'Its size in bytes, as published.' },
        sha256: {
          type: 'string',
          pattern: '^[0-9a-fA-F]{64}$',
          description: "Its sha256, as published. Without it the first download's sha256 is recorded, and every later use is checked against it.",
        },
      },
    },
    train: folder("Folder of training images (layouts 'filename' and 'folders')."),
    val: folder(
      'Folder of validation images, labelled like train. Without it, valFraction of each class of train is held out.',
    ),
    test: folder('Folder of unlabelled images to predict; each id is the file name without extension ("123.jpg" → 123).'),
    manifest: folder("CSV file with a header row and columns path,label; paths relative to the CSV file (layout 'csv')."),
    valManifest: folder("CSV file of validation images, like manifest (layout 'csv')."),
    labelRule: labelRuleSchema,
    classes: classList(
      "Class names in class-index order (layouts 'folders' and 'csv'); default: every class found, sorted.",
    ),
    valFraction: {
      type: 'number',
      minimum: 0,
      exclusiveMaximum: 1,
      default: DEFAULT_VAL_FRACTION,
      description: 'Fraction of each class held out for validation when no validation set is given (stratified).',
    },
    seed: {
      type: 'integer',
      default: 0,
      description: 'Seed of the validation split: the same seed and file names give the same split everywhere.',
    },
    maxPixels: {
      type: 'integer',
      minimum: 1,
      default: DEFAULT_MAX_PIXELS,
      description: 'Images declaring more pixels than this are skipped as possible decompression bombs.',
    },
    maxFileBytes: {
      type: 'integer',
      minimum: 1,
      default: DEFAULT_MAX_FILE_BYTES,
      description: 'Files larger than this many bytes are skipped.',
    },
  },
  allOf: [
    onlyFor('filename', ['train'], ['manifest', 'valManifest', 'classes', 'root', 'source']),
    onlyFor('folders', ['train'], ['manifest', 'valManifest', 'labelRule', 'root', 'source']),
    onlyFor('csv', ['manifest'], ['train', 'val', 'labelRule', 'root', 'source']),
    onlyFor('auto', ['root'], ['train', 'val', 'test', 'manifest', 'valManifest']),
  ],
} as const;

/**
 * Checks the spec (for callers that skip the schema), fills in defaults and
 * makes paths absolute against `baseDir`. Throws DatasetError naming the field.
 */
export function resolveDatasetSpec(spec: DatasetSpec, baseDir = process.cwd()): ResolvedDatasetSpec {
  if (!spec || typeof spec !== 'object') throw new DatasetError('dataset spec must be an object with a layout');
  const abs = (value: unknown, field: string): string => {
    if (typeof value !== 'string' || value === '') {
      throw new DatasetError(`dataset.${field} must be a path (a non-empty string), got ${JSON.stringify(value)}`);
    }
    return path.resolve(baseDir, value);
  };
  const optionalAbs = (value: unknown, field: string) => (value === undefined || value === null ? null : abs(value, field));

  const valFraction = spec.valFraction ?? DEFAULT_VAL_FRACTION;
  if (typeof valFraction !== 'number' || !(valFraction >= 0 && valFraction < 1)) {
    throw new DatasetError(`dataset.valFraction must be a number from 0 (no validation) up to but excluding 1, got ${JSON.stringify(valFraction)}`);
  }
  const seed = spec.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new DatasetError(`dataset.seed must be an integer, got ${JSON.stringify(seed)}`);
  const positive = (value: unknown, field: string, fallback: number) => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new DatasetError(`dataset.${field} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return v;
  };
  const common: ResolvedCommon = {
    valFraction,
    seed,
    test: optionalAbs((spec as { test?: string }).test, 'test'),
    maxPixels: positive(spec.maxPixels, 'maxPixels', DEFAULT_MAX_PIXELS),
    maxFileBytes: positive(spec.maxFileBytes, 'maxFileBytes', DEFAULT_MAX_FILE_BYTES),
  };
  const classes = (value: unknown): string[] | null => {
    if (value === undefined || value === null) return null;
    if (!Array.isArray(value) || value.length === 0 || value.some((c) => typeof c !== 'string' || c === '')) {
      throw new DatasetError('dataset.classes must be a non-empty list of class names');
    }
    if (new Set(value).size !== value.length) throw new DatasetError('dataset.classes lists a class twice');
    return [...value] as string[];
  };

  switch (spec.layout) {
    case 'filename': {
      const labelRule = spec.labelRule ?? CATS_VS_DOGS_RULE;
      try {
        compileLabelRule(labelRule);
      } catch (error) {
        if (error instanceof LabelRuleError) throw new DatasetError(`dataset.${error.message}`);
        throw error;
      }
      return { ...common, layout: 'filename', train: abs(spec.train, 'train'), val: optionalAbs(spec.val, 'val'), labelRule };
    }
    case 'folders':
      return {
        ...common,
        layout: 'folders',
        train: abs(spec.train, 'train'),
        val: optionalAbs(spec.val, 'val'),
        classes: classes(spec.classes),
      };
    case 'csv':
      return {
        ...common,
        layout: 'csv',
        manifest: abs(spec.manifest, 'manifest'),
        valManifest: optionalAbs(spec.valManifest, 'valManifest'),
        classes: classes(spec.classes),
      };
    case 'auto':
      throw new DatasetError("dataset.layout 'auto' is resolved against the folder first (resolveAutoLayout)");
    default:
      throw new DatasetError(
        `dataset.layout must be 'filename', 'folders', 'csv' or 'auto', got ${JSON.stringify((spec as { layout?: unknown }).layout)}`,
      );
  }
}
