// `dataset-manifest` (images.dataset): every image with its content hash,
// label, id and split, plus what was skipped and why.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DatasetScan } from '../images/dataset-types.js';
import type { Artifact, Json, UpstreamPreview } from '../runner/step.js';
import { defineKind } from './kind.js';

export const datasetManifestKind = defineKind('dataset-manifest', 'a dataset manifest');

export const MANIFEST_FILE = 'manifest.json';

/** The manifest file's content. */
export type DatasetManifest = Pick<DatasetScan, 'classes' | 'images' | 'counts' | 'validation' | 'skipped' | 'ignored' | 'warnings'>;

/** The artifact's small JSON value (kept in the run record). */
export interface DatasetValue {
  classes: string[];
  counts: { train: number; val: number; test: number };
  validation: DatasetScan['validation'];
  skipped: { path: string; reason: string }[];
  ignored: DatasetScan['ignored'];
}

/** What a dataset manifest is known to hold before it is made (its producer's `preview`). */
export interface DatasetPreview {
  /** false when the parameters hold no validation images out (no validation folder or manifest, valFraction 0). */
  hasValidationSplit: boolean;
}

export const datasetPreviewJson = (preview: DatasetPreview): Json => preview as unknown as Json;

/** The preview of an upstream dataset manifest, when its producer gives one. */
export function datasetPreview(upstream: UpstreamPreview): DatasetPreview | undefined {
  const p = upstream.preview;
  return upstream.kind === datasetManifestKind.name && p && typeof p === 'object' && !Array.isArray(p) && typeof p.hasValidationSplit === 'boolean'
    ? { hasValidationSplit: p.hasValidationSplit }
    : undefined;
}

export async function writeDatasetManifest(outDir: string, manifest: DatasetManifest): Promise<void> {
  await writeFile(path.join(outDir, MANIFEST_FILE), JSON.stringify(manifest));
}

export async function readDatasetManifest(artifact: Artifact): Promise<DatasetManifest> {
  return JSON.parse(await readFile(artifact.file(MANIFEST_FILE), 'utf8')) as DatasetManifest;
}

export const datasetValue = (artifact: Artifact): DatasetValue => artifact.value as unknown as DatasetValue;
export const datasetValueJson = (value: DatasetValue): Json => value as unknown as Json;
