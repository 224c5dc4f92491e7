// What a report shows, read out of a run record. Stage names vary between
// pipelines, so stages are found by the artifact kind they produce, and their
// values are read by that kind's checked reader (a malformed piece is left
// out rather than failing the whole report).
import { evaluationFromRecord, evaluationKind, type Evaluation as EvaluationValues, type Mistake } from '../artifacts/evaluation.js';
import { trainedHeadKind, trainingFromRecord, type Training as TrainingValues } from '../artifacts/head.js';
import { num } from '../artifacts/record-json.js';
import type { StageOutcome } from '../runner/outcome.js';
import type { RunRecord } from '../runner/runs.js';

/** Misclassified images a report shows (and makes thumbnails for), per run. */
export const MISTAKES_SHOWN = 24;

export interface Training extends TrainingValues {
  stage: string;
}

export interface Evaluation extends EvaluationValues {
  stage: string;
}

/** The number a reader looks at first, and where it came from. */
export interface Headline {
  label: string;
  value: number;
  source: string;
}

/**
 * Run records written before stages recorded the kind they produce: the kind
 * of the two built-in steps the report reads.
 */
const KIND_BEFORE_RECORDED: Readonly<Record<string, string>> = { 'head.train': trainedHeadKind.name, 'head.evaluate': evaluationKind.name };

const producedKind = (s: StageOutcome) => s.kind ?? KIND_BEFORE_RECORDED[s.uses];

/** The last stage producing `kind` that produced something (a later stage supersedes an earlier one). */
function stageProducing(record: RunRecord, kind: string): StageOutcome | undefined {
  const all = record.stages.filter((s) => producedKind(s) === kind);
  return all.reverse().find((s) => s.status === 'ran' || s.status === 'cached') ?? all[0];
}

export function trainingOf(record: RunRecord): Training | null {
  const stage = stageProducing(record, trainedHeadKind.name);
  if (!stage || (stage.status !== 'ran' && stage.status !== 'cached')) return null;
  const training = trainingFromRecord(stage.value, stage.metrics);
  return training && { stage: stage.name, ...training };
}

export function evaluationOf(record: RunRecord): Evaluation | null {
  const stage = stageProducing(record, evaluationKind.name);
  // A failed or skipped evaluation has nothing to show; the timeline and the error say why.
  if (!stage || (stage.status !== 'ran' && stage.status !== 'cached')) return null;
  return { stage: stage.name, ...evaluationFromRecord(stage.value, stage.metrics ?? {}) };
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
  const train = stageProducing(record, trainedHeadKind.name);
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

