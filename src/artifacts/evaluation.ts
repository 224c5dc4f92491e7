// `evaluation` (head.evaluate): accuracy, loss, per-class scores, the
// confusion matrix and the misclassified images of one split.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Json } from '../runner/step.js';
import { defineKind } from './kind.js';
import { isObject, type JsonObject, num, str, strings } from './record-json.js';

export const evaluationKind = defineKind('evaluation', 'an evaluation');

const EVALUATION_FILE = 'evaluation.json';

export interface ClassScores {
  class: string;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  support: number | null;
}

export interface Mistake {
  path: string;
  id: string | number | null;
  trueLabel: string;
  predictedLabel: string;
  confidence: number | null;
}

/** What the step keeps as the artifact's value (the run record shows it). */
export interface EvaluationValue {
  classes: string[];
  perClass: { class: string; precision: number; recall: number; f1: number; support: number }[];
  confusion: number[][];
  misclassified: { path: string; id: string | number | null; trueLabel: string; predictedLabel: string; confidence: number }[];
}

/** The full report file: the value plus the metrics it was computed with. */
export async function writeEvaluation(outDir: string, metrics: object, value: EvaluationValue): Promise<Json> {
  await writeFile(path.join(outDir, EVALUATION_FILE), JSON.stringify({ ...metrics, ...value }, null, 1));
  return value as unknown as Json;
}

/** An evaluation as a run record holds it, checked field by field. */
export interface Evaluation {
  accuracy: number | null;
  loss: number | null;
  macroF1: number | null;
  count: number | null;
  classes: string[];
  perClass: ClassScores[];
  /** Rows are true classes, columns predicted ones; null when absent or not square. */
  confusion: number[][] | null;
  misclassified: Mistake[];
}

function confusionOf(v: Json | undefined, size: number): number[][] | null {
  if (!Array.isArray(v) || !v.length) return null;
  const rows = v.map((row) => (Array.isArray(row) ? row.map((c) => num(c) ?? 0) : []));
  const n = size || rows.length;
  return rows.length === n && rows.every((r) => r.length === n) ? rows : null;
}

export function evaluationFromRecord(v: Json | undefined, m: { [name: string]: Json }): Evaluation {
  const value: JsonObject = isObject(v) ? v : {};
  const classes = strings(value.classes);
  const perClass = (Array.isArray(value.perClass) ? value.perClass : []).filter(isObject).map((c) => ({
    class: str(c.class) ?? '?',
    precision: num(c.precision),
    recall: num(c.recall),
    f1: num(c.f1),
    support: num(c.support),
  }));
  const misclassified = (Array.isArray(value.misclassified) ? value.misclassified : []).filter(isObject).map((x) => ({
    path: str(x.path) ?? '',
    id: typeof x.id === 'string' || typeof x.id === 'number' ? x.id : null,
    trueLabel: str(x.trueLabel) ?? '?',
    predictedLabel: str(x.predictedLabel) ?? '?',
    confidence: num(x.confidence),
  }));
  return {
    accuracy: num(m.accuracy),
    loss: num(m.loss),
    macroF1: num(m.macroF1),
    count: num(m.count),
    classes: classes.length ? classes : perClass.map((c) => c.class),
    perClass,
    confusion: confusionOf(value.confusion, classes.length),
    misclassified,
  };
}
