// `transform` (images.transform): the resolved preprocessing recipe, applied
// as images stream into the backbone.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TransformSpec } from '../images/transform-spec.js';
import type { Artifact, Json } from '../runner/step.js';
import { defineKind } from './kind.js';

export const transformKind = defineKind('transform', 'an image transform');

const TRANSFORM_FILE = 'transform.json';

export async function writeTransform(outDir: string, spec: TransformSpec): Promise<Json> {
  await writeFile(path.join(outDir, TRANSFORM_FILE), JSON.stringify(spec, null, 1));
  return spec as unknown as Json;
}

/** The recipe's JSON text, as written (embedded verbatim in exported models). */
export const readTransformText = (artifact: Artifact): Promise<string> => readFile(artifact.file(TRANSFORM_FILE), 'utf8');

export async function readTransform(artifact: Artifact): Promise<TransformSpec> {
  return JSON.parse(await readTransformText(artifact)) as TransformSpec;
}
