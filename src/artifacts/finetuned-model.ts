// `finetuned-model` (backbone.finetune): the frozen bottom with the trained
// top as one feature extractor (ONNX, output [N, F]) and the trained head,
// what export.model joins into one classifier.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Artifact, Json } from '../runner/step.js';
import type { TrainedHead } from '../train/serialize.js';
import { readHead, writeHead } from './head.js';
import { defineKind } from './kind.js';

export const finetunedModelKind = defineKind('finetuned-model', 'a fine-tuned backbone and head');

const FEATURES_FILE = 'finetuned-features.onnx';

export async function writeFinetunedModel(outDir: string, features: Uint8Array, head: TrainedHead, value: Json): Promise<Json> {
  await writeFile(path.join(outDir, FEATURES_FILE), features);
  await writeHead(outDir, head);
  return value;
}

/** Whether an artifact is a fine-tuned model (export.model takes it or a trained head). */
export const isFinetunedModel = (artifact: Artifact): boolean => artifact.files().includes(FEATURES_FILE);

export async function readFinetunedModel(artifact: Artifact): Promise<{ features: Uint8Array; head: TrainedHead }> {
  return { features: new Uint8Array(await readFile(artifact.file(FEATURES_FILE))), head: await readHead(artifact) };
}
