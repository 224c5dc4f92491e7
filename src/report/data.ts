// What a report shows, read out of a run record. Stage names vary between
// pipelines, so stages are found by the step they use. Stage values are
// untyped JSON in the record: every field is checked, and a malformed piece
// is left out rather than failing the whole report.
import type { StageOutcome } from '../runner/executor.js';
import type { RunRecord } from '../runner/runs.js';
import type { Json } from '../runner/step.js';

export const TRAIN_STEP = 'head.train';
export const EVALUATE_STEP = 'head.evaluate';
/** Misclassified images a report shows (and makes thumbnails for), per run. */
export const MISTAKES_SHOWN = 24;

export interface EpochPoint {
  epoch: number;
  trainLoss: number | null;
  trainAccuracy: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  lr: number | null;
  seconds: number | null;
}

export interface Training {
  stage: string;
  history: EpochPoint[];
  bestEpoch: number | null;
  classes: string[];
}

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

export interface Evaluation {
  stage: string;
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

/** The number a reader looks at first, and where it came from. */
export interface Headline {
  label: string;
  value: number;
  source: string;
}

type JsonObject = { [key: string]: Json };

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: Json | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);
const strings = (v: Json | undefined): string[] => (Array.isArray(v) ? v.map(str).filter((s): s is string => s !== null) : []);

/** The last stage using `step` that produced something (a later stage supersedes an earlier one). */
function stageUsing(record: RunRecord, step: string): StageOutcome | undefined {
  const all = record.stages.filter((s) => s.uses === step);
  return all.reverse().find((s) => s.status === 'ran' || s.status === 'cached') ?? all[0];
}

export function trainingOf(record: RunRecord): Training | null {
  const stage = stageUsing(record, TRAIN_STEP);
  if (!stage || (stage.status !== 'ran' && stage.status !== 'cached') || !isObject(stage.value)) return null;
  const value = stage.value;
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
  return { stage: stage.name, history, bestEpoch: num(value.bestEpoch) ?? num(stage.metrics.bestEpoch), classes: strings(value.classes) };
}

function confusionOf(v: Json | undefined, size: number): number[][] | null {
  if (!Array.isArray(v) || !v.length) return null;
  const rows = v.map((row) => (Array.isArray(row) ? row.map((c) => num(c) ?? 0) : []));
  const n = size || rows.length;
  return rows.length === n && rows.every((r) => r.length === n) ? rows : null;
}

export function evaluationOf(record: RunRecord): Evaluation | null {
  const stage = stageUsing(record, EVALUATE_STEP);
  // A failed or skipped evaluation has nothing to show; the timeline and the error say why.
  if (!stage || (stage.status !== 'ran' && stage.status !== 'cached')) return null;
  const value: JsonObject = isObject(stage.value) ? stage.value : {};
  const m = stage.metrics ?? {};
  const classes = strings(value.classes);
  const perClass = (Array.isArray(value.perClass) ? value.perClass : []).filter(isObject).map((c) => ({
    class: str(c.class) ?? '?',
    precision: num(c.precision),
    recall: num(c.recall),
    f1: num(c.f1),
    support: num(c.support),
  }));
  const misclassified = (Array.isArray(value.misclassified) ? value.misclassified : [])
    .filter(isObject)
    .map((x) => ({
      path: str(x.path) ?? '',
      id: typeof x.id === 'string' || typeof x.id === 'number' ? x.id : null,
      trueLabel: str(x.trueLabel) ?? '?',
      predictedLabel: str(x.predictedLabel) ?? '?',
      confidence: num(x.confidence),
    }));
  return {
    stage: stage.name,
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

/**
 * Validation accuracy: from the evaluation when there is one, else from the
 * training stage (its best epoch's), else nothing.
 */
export function headlineOf(record: RunRecord): Headline | null {
  const evaluation = evaluationOf(record);
  if (evaluation?.accuracy !== null && evaluation?.accuracy !== undefined) {
    return { label: 'Validation accuracy', value: evaluation.accuracy, source: evaluation.stage };
  }
  const train = stageUsing(record, TRAIN_STEP);
  const acc = num(train?.metrics.valAccuracy);
  if (train && acc !== null) return { label: 'Validation accuracy', value: acc, source: train.name };
  return null;
}

/** The mistakes a report shows: the most confident first, since those say most about the model or the labels. */
export function shownMistakes(evaluation: Evaluation, limit: number): Mistake[] {
  return [...evaluation.misclassified].sort((a, b) => (b.confidence ?? -1) - (a.confidence ?? -1)).slice(0, limit);
}

/** Scalar metrics of every stage, as `stage.metric`. */
export function scalarMetrics(record: RunRecord): { stage: string; name: string; value: number | string | boolean }[] {
  const out: { stage: string; name: string; value: number | string | boolean }[] = [];
  for (const s of record.stages) {
    for (const [name, v] of Object.entries(s.metrics ?? {})) {
      if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') out.push({ stage: s.name, name, value: v });
    }
  }
  return out;
}

