// `feature-model` (backbone.freeze, backbone.quantize): the backbone cut before its
// classification head, an ONNX model whose output is the flat feature vector.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Artifact, Json } from '../runner/step.js';
import { defineKind } from './kind.js';

export const featureModelKind = defineKind('feature-model', 'a frozen feature model');

const MODEL_FILE = 'features.onnx';

export interface FeatureModelValue {
  featureName: string;
  featureWidth: number;
  cutAfter: string;
  removedNodes: number;
}

export async function writeFeatureModel(outDir: string, bytes: Uint8Array, value: FeatureModelValue): Promise<Json> {
  await writeFile(path.join(outDir, MODEL_FILE), bytes);
  return value as unknown as Json;
}

export const featureModelPath = (artifact: Artifact): string => artifact.file(MODEL_FILE);
export const featureModelValue = (artifact: Artifact): FeatureModelValue => artifact.value as unknown as FeatureModelValue;
