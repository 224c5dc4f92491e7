// `backbone` (backbone.load): the pretrained classifier as an ONNX file, with
// its image input and outputs described.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Artifact, Json } from '../runner/step.js';
import { defineKind } from './kind.js';

export const backboneKind = defineKind('backbone', 'a pretrained backbone');

const MODEL_FILE = 'model.onnx';

export interface BackboneValue {
  model: string;
  sha256: string;
  source: string;
  input: { name: string; layout: 'NCHW' | 'NHWC'; height: number | null; width: number | null; batch: number | null };
  outputs: { name: string; dims: (number | string | null)[] | null }[];
  /** Normalisation the model was trained with, when the catalogue knows it. */
  preprocessing: { mean: number[]; std: number[]; resizeShorterSide: number; cropSize: number } | null;
}

export async function writeBackboneModel(outDir: string, bytes: Uint8Array): Promise<void> {
  await writeFile(path.join(outDir, MODEL_FILE), bytes);
}

export const backboneModelPath = (artifact: Artifact): string => artifact.file(MODEL_FILE);
export const backboneValue = (artifact: Artifact): BackboneValue => artifact.value as unknown as BackboneValue;
export const backboneValueJson = (value: BackboneValue): Json => value as unknown as Json;
