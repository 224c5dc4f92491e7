// What the stages after training share: the trained head and the cached
// features of one split, read from their artifacts.
import { readFile } from 'node:fs/promises';
import type { Split } from '../images/dataset.js';
import type { Inputs } from '../runner/step.js';
import { decodeHead, type TrainedHead } from '../train/serialize.js';
import { readFeatureTable, splitFeatures, type SplitFeatures } from './feature-table.js';
import { HEAD_FILE } from './head.js';

/** The inputs of a stage that uses a trained head on cached features. */
export const trainedHeadInputs = {
  train: { description: 'the head.train stage' },
  features: { description: 'the features.extract stage' },
  dataset: { description: 'the images.dataset stage' },
};

export async function trainedHeadOn(inputs: Inputs, split: Split): Promise<{ head: TrainedHead; split: SplitFeatures }> {
  const head = decodeHead(await readFile(inputs.train!.file(HEAD_FILE)));
  const table = await readFeatureTable(inputs.features!, inputs.dataset!);
  return { head, split: splitFeatures(table, split) };
}
