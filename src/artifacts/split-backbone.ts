// `split-backbone` (backbone.split): a backbone cut for fine-tuning, in three
// parts: the frozen bottom (ONNX, its output the cut's activations, flat), the
// trainable top (its operators and float32 parameters), and the whole frozen
// feature extractor (the probe's model, kept when fine-tuning does not beat it).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TopNet, TopOp } from '../finetune/top.js';
import type { Artifact, Json } from '../runner/step.js';
import type { ActivationCodes } from './activations.js';
import { defineKind } from './kind.js';

export const splitBackboneKind = defineKind('split-backbone', 'a backbone split for fine-tuning');

const BOTTOM_FILE = 'bottom.onnx';
const FROZEN_FILE = 'frozen.onnx';
const TOP_FILE = 'top.json';
const PARAMS_FILE = 'top.f32';

export interface SplitBackboneValue {
  cutTensor: string;
  /** The cut's shape without the batch dimension, [C, H, W]. */
  inputShape: number[];
  /** Values per image at the cut: C·H·W. */
  activationWidth: number;
  featureWidth: number;
  quantized: boolean;
  codes: ActivationCodes | null;
  /** Block boundaries, the top-most first (tensor and blocks above it). */
  candidates: { tensor: string; blocksAbove: number }[];
  trainableParameters: number;
}

interface TopFile {
  input: string;
  inputShape: number[];
  output: string;
  ops: TopOp[];
  params: { name: string; dims: number[] }[];
}

export async function writeSplitBackbone(outDir: string, parts: { bottom: Uint8Array; frozen: Uint8Array; top: TopNet }, value: SplitBackboneValue): Promise<Json> {
  const { top } = parts;
  await writeFile(path.join(outDir, BOTTOM_FILE), parts.bottom);
  await writeFile(path.join(outDir, FROZEN_FILE), parts.frozen);
  // JSON has no Infinity: a ReLU's open upper bound is written as null.
  const file: TopFile = { input: top.input, inputShape: top.inputShape, output: top.output, ops: top.ops, params: top.params.map((p) => ({ name: p.name, dims: p.dims })) };
  await writeFile(path.join(outDir, TOP_FILE), JSON.stringify(file, (_, v) => (v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v)));
  const total = top.params.reduce((a, p) => a + p.data.length, 0);
  const data = new Float32Array(total);
  let at = 0;
  for (const p of top.params) {
    data.set(p.data, at);
    at += p.data.length;
  }
  await writeFile(path.join(outDir, PARAMS_FILE), new Uint8Array(data.buffer));
  return value as unknown as Json;
}

export const splitBackboneValue = (artifact: Artifact): SplitBackboneValue => artifact.value as unknown as SplitBackboneValue;
export const bottomModelPath = (artifact: Artifact): string => artifact.file(BOTTOM_FILE);
export const frozenModelPath = (artifact: Artifact): string => artifact.file(FROZEN_FILE);

export async function readTop(artifact: Artifact): Promise<TopNet> {
  const file = JSON.parse(await readFile(artifact.file(TOP_FILE), 'utf8'), (_, v) => (v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v)) as TopFile;
  const bytes = await readFile(artifact.file(PARAMS_FILE));
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  let at = 0;
  const params = file.params.map((p) => {
    const n = p.dims.reduce((a, b) => a * b, 1);
    const data = all.slice(at, at + n);
    at += n;
    return { ...p, data };
  });
  if (at !== all.length) throw new Error(`${PARAMS_FILE} holds ${all.length} values, the top's parameters ${at}`);
  return { ...file, params };
}
