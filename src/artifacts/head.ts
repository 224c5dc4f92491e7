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

/** One candidate of the weightDecay 'auto' search (src/train/linear-solve.ts). */
export interface SearchCandidate {
  weightDecay: number;
  accuracy: number;
  loss: number | null;
}

/** The weightDecay 'auto' search: held-out score against strength, and the chosen strength. */
export interface RegularizationSearchValue {
  method: string;
  folds: number | null;
  candidates: SearchCandidate[];
  chosen: number;
  /** Set when the candidates were solved on a subsample: its rows, all training rows, and the strength the final fit used. */
  subsample?: { searchRows: number; trainRows: number; applied: number };
  /** The early-stopped candidate, when it ran, and whether the head is it. */
  earlyStopped?: { lr: number; bestEpoch: number; accuracy: number; loss: number; kept: boolean };
}

/** A trained head's value: its training history, and how its regularisation was set. */
export interface TrainingValue {
  history: EpochPoint[];
  bestEpoch: number;
  stoppedEarly: boolean;
  classes: string[];
  engine: string;
  device: string;
  optimizer?: string;
  /** The L2 strength used (the chosen one for weightDecay 'auto'). */
  weightDecay?: number;
  /** Whether features were standardised (the transform is folded into the head). */
  standardized?: boolean;
  solver?: { iterations: number; evaluations: number; converged: boolean; stop: string; gradientNorm: number; objective: number };
  regularization?: RegularizationSearchValue & { criterion: string; candidates: (SearchCandidate & { iterations: number; converged: boolean })[] };
}

export const trainingValueJson = (value: TrainingValue): Json => value as unknown as Json;

/** The training history as a run record holds it, checked field by field. */
export interface Training {
  history: EpochPoint[];
  bestEpoch: number | null;
  classes: string[];
  regularization: RegularizationSearchValue | null;
}

function regularizationFromRecord(v: Json | undefined): RegularizationSearchValue | null {
  if (!isObject(v)) return null;
  const candidates = (Array.isArray(v.candidates) ? v.candidates : [])
    .filter(isObject)
    .map((c) => ({ weightDecay: num(c.weightDecay), accuracy: num(c.accuracy), loss: num(c.loss) }))
    .filter((c): c is SearchCandidate => c.weightDecay !== null && c.weightDecay > 0 && c.accuracy !== null)
    .sort((a, b) => a.weightDecay - b.weightDecay);
  const chosen = num(v.chosen);
  if (!candidates.length || chosen === null) return null;
  const [searchRows, trainRows, applied] = [num(v.searchRows), num(v.trainRows), num(v.applied)];
  const subsample = searchRows !== null && trainRows !== null && applied !== null && searchRows < trainRows ? { subsample: { searchRows, trainRows, applied } } : {};
  const e = isObject(v.earlyStopping) ? v.earlyStopping : null;
  const [lr, bestEpoch, accuracy, loss] = e ? [num(e.lr), num(e.bestEpoch), num(e.accuracy), num(e.loss)] : [null, null, null, null];
  const earlyStopped =
    lr !== null && bestEpoch !== null && accuracy !== null && loss !== null ? { earlyStopped: { lr, bestEpoch, accuracy, loss, kept: v.family === 'early stopping' } } : {};
  return { method: typeof v.method === 'string' ? v.method : 'search', folds: num(v.folds), candidates, chosen, ...subsample, ...earlyStopped };
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
  return {
    history,
    bestEpoch: num(value.bestEpoch) ?? num(metrics.bestEpoch),
    classes: strings(value.classes),
    regularization: regularizationFromRecord(value.regularization),
  };
}
