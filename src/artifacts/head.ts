// `head` (head.define) and `trained-head` (head.train): the classification
// head in one self-describing binary file (src/train/serialize.ts). They share
// the file format but are different kinds, so an untrained head cannot be
// wired where a trained one is needed.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Artifact, Json } from '../runner/step.js';
import { decodeHead, encodeHead, type TrainedHead } from '../train/serialize.js';
import { defineKind } from './kind.js';
import { isObject, num, strings } from './record-json.js';

export const headKind = defineKind('head', 'an untrained head');
export const trainedHeadKind = defineKind('trained-head', 'a trained head');

const HEAD_FILE = 'head.bin';

export async function writeHead(outDir: string, head: TrainedHead): Promise<void> {
  await writeFile(path.join(outDir, HEAD_FILE), encodeHead(head));
}

/** The head of a `head` or `trained-head` artifact. */
export async function readHead(artifact: Artifact): Promise<TrainedHead> {
  return decodeHead(await readFile(artifact.file(HEAD_FILE)));
}

export interface EpochPoint {
  epoch: number;
  trainLoss: number | null;
  trainAccuracy: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  lr: number | null;
  seconds: number | null;
}

/** A trained head's value: its training history. */
export interface TrainingValue {
  history: EpochPoint[];
  bestEpoch: number;
  stoppedEarly: boolean;
  classes: string[];
  engine: string;
  device: string;
}

export const trainingValueJson = (value: TrainingValue): Json => value as unknown as Json;

/** The training history as a run record holds it, checked field by field. */
export interface Training {
  history: EpochPoint[];
  bestEpoch: number | null;
  classes: string[];
}

export function trainingFromRecord(value: Json | undefined, metrics: { [name: string]: Json }): Training | null {
  if (!isObject(value)) return null;
  const history = (Array.isArray(value.history) ? value.history : [])
    .filter(isObject)
    .map((e) => ({
      epoch: num(e.epoch),
      trainLoss: num(e.trainLoss),
      trainAccuracy: num(e.trainAccuracy),
      valLoss: num(e.valLoss),
      valAccuracy: num(e.valAccuracy),
      lr: num(e.lr),
      seconds: num(e.seconds),
    }))
    .filter((e): e is EpochPoint => e.epoch !== null)
    .sort((a, b) => a.epoch - b.epoch);
  return { history, bestEpoch: num(value.bestEpoch) ?? num(metrics.bestEpoch), classes: strings(value.classes) };
}
