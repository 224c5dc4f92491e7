// `predictions` (export.csv): the test images' predictions as a CSV.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defineKind } from './kind.js';

export const predictionsKind = defineKind('predictions', 'a predictions table');

const PREDICTIONS_FILE = 'predictions.csv';

export async function writePredictions(outDir: string, csv: string): Promise<string> {
  await writeFile(path.join(outDir, PREDICTIONS_FILE), csv);
  return PREDICTIONS_FILE;
}
