// `exported-model` (export.model): one ONNX file, backbone and trained head
// merged with a softmax output, carrying its label names and preprocessing.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defineKind } from './kind.js';

export const exportedModelKind = defineKind('exported-model', 'an exported model');

export const EXPORTED_MODEL_FILE = 'model.onnx';

/** The metadata key holding the transform recipe, as JSON text (read by `tlpipe predict`). */
export const TRANSFORM_METADATA_KEY = 'tlpipe.transform';

export async function writeExportedModel(outDir: string, bytes: Uint8Array): Promise<string> {
  await writeFile(path.join(outDir, EXPORTED_MODEL_FILE), bytes);
  return EXPORTED_MODEL_FILE;
}
