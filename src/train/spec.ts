// What a training run is asked to do (optimiser, schedule, batches, early
// stopping...), its JSON Schema, and the validation that turns user input
// into a complete TrainSpec.
import { Ajv, type ErrorObject } from 'ajv';
import { headSpecSchema, type HeadSpec } from './head.js';

export type EngineChoice = 'auto' | 'onnx' | 'typescript';
export type Device = 'cpu' | 'cuda';
export type OptimizerName = 'adam' | 'adamw' | 'sgd';
export type LrSchedule = 'constant' | 'step' | 'cosine';
export type ClassWeightsSpec = 'balanced' | number[] | null;

export interface TrainSpec {
  /** Which implementation runs the steps; 'auto' picks the faster for the head's size. */
  engine: EngineChoice;
  /** Execution provider of the ONNX engine. */
  device: Device;
  optimizer: OptimizerName;
  lr: number;
  /** Adam/AdamW moment decay rates. */
  betas: [number, number];
  /** Adam/AdamW denominator term. */
  eps: number;
  /** SGD momentum; 0 is plain SGD. */
  momentum: number;
  /** SGD dampening of the momentum buffer's new gradient. */
  dampening: number;
  nesterov: boolean;
  /** L2 penalty added to the gradient (Adam, SGD) or decoupled decay (AdamW). */
  weightDecay: number;
  batchSize: number;
  epochs: number;
  /** Seeds the shuffling order of each epoch and the dropout masks. */
  seed: number;
  /** Per-class loss weights; 'balanced' is n / (classes × count of the class). */
  classWeights: ClassWeightsSpec;
  /** Stop after this many epochs without a validation-loss improvement; null trains every epoch. */
  patience: number | null;
  /** Smallest decrease of validation loss that counts as an improvement. */
  minDelta: number;
  /** Learning-rate schedule, applied per epoch. */
  lrSchedule: LrSchedule;
  /** 'step': multiply the learning rate by lrGamma every lrStepEpochs epochs (PyTorch StepLR). */
  lrStepEpochs: number;
  lrGamma: number;
  /** 'cosine': anneal from lr down to lrMin over the epochs (PyTorch CosineAnnealingLR, T_max = epochs). */
  lrMin: number;
}

export const MAX_EPOCHS = 100000;
export const MAX_BATCH_SIZE = 1 << 20;

const positiveFinite = (description: string, def: number, maximum = 1e6) => ({
  type: 'number',
  exclusiveMinimum: 0,
  maximum,
  default: def,
  description,
});

/** JSON Schema of the training parameters; every property has a default. */
export const trainSpecSchema = {
  $id: 'tlpipe:train',
  title: 'Head training',
  description: 'Trains the classification head on cached backbone features with cross-entropy loss.',
  type: 'object',
  additionalProperties: false,
  properties: {
    engine: {
      enum: ['auto', 'onnx', 'typescript'],
      default: 'auto',
      description:
        "'onnx': one onnxruntime run per batch (fast for large heads, can use CUDA). 'typescript': plain typed-array loops (fastest for small heads). 'auto': the faster one for this head's size.",
    },
    device: {
      enum: ['cpu', 'cuda'],
      default: 'cpu',
      description: "Execution provider for the 'onnx' engine. 'cuda' needs onnxruntime-node installed with its CUDA provider.",
    },
    optimizer: {
      enum: ['adam', 'adamw', 'sgd'],
      default: 'adam',
      description: "'adam' and 'sgd' as in PyTorch (weight decay added to the gradient); 'adamw' decouples weight decay.",
    },
    lr: positiveFinite('Learning rate.', 1e-3, 100),
    betas: {
      type: 'array',
      items: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
      minItems: 2,
      maxItems: 2,
      default: [0.9, 0.999],
      description: 'Adam/AdamW coefficients of the running averages of the gradient and its square.',
    },
    eps: positiveFinite('Adam/AdamW term added to the denominator for numerical stability.', 1e-8, 1),
    momentum: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9, description: 'SGD momentum (0: plain SGD).' },
    dampening: { type: 'number', minimum: 0, maximum: 1, default: 0, description: 'SGD dampening of momentum.' },
    nesterov: { type: 'boolean', default: false, description: 'SGD Nesterov momentum (needs momentum > 0 and dampening 0).' },
    weightDecay: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      default: 0,
      description: 'Weight decay: L2 penalty added to the gradient (adam, sgd) or decoupled (adamw).',
    },
    batchSize: { type: 'integer', minimum: 1, maximum: MAX_BATCH_SIZE, default: 64, description: 'Samples per optimisation step.' },
    epochs: { type: 'integer', minimum: 1, maximum: MAX_EPOCHS, default: 10, description: 'Passes over the training set.' },
    seed: {
      type: 'integer',
      minimum: 0,
      maximum: 4294967295,
      default: 0,
      description: 'Seed of the shuffling order and dropout masks: the same seed and data give the same results.',
    },
    classWeights: {
      anyOf: [
        { const: 'balanced' },
        { type: 'array', items: { type: 'number', exclusiveMinimum: 0, maximum: 1e6 }, minItems: 2 },
        { type: 'null' },
      ],
      default: null,
      description:
        "Loss weight of each class, for imbalanced data: 'balanced' (n / (classes × class count)), one positive number per class, or null for equal weights. The loss is the weighted mean, as PyTorch's CrossEntropyLoss(weight=...).",
    },
    patience: {
      anyOf: [{ type: 'integer', minimum: 1, maximum: MAX_EPOCHS }, { type: 'null' }],
      default: null,
      description: 'Early stopping: stop after this many epochs without validation-loss improvement; the best epoch’s weights are kept. null: no early stopping.',
    },
    minDelta: { type: 'number', minimum: 0, maximum: 1e6, default: 0, description: 'Smallest validation-loss decrease that counts as an improvement.' },
    lrSchedule: {
      enum: ['constant', 'step', 'cosine'],
      default: 'constant',
      description: "'constant'; 'step': multiply by lrGamma every lrStepEpochs epochs; 'cosine': anneal from lr to lrMin over the epochs.",
    },
    lrStepEpochs: { type: 'integer', minimum: 1, maximum: MAX_EPOCHS, default: 7, description: "Epochs between decays ('step' schedule)." },
    lrGamma: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.1, description: "Decay factor ('step' schedule)." },
    lrMin: { type: 'number', minimum: 0, maximum: 100, default: 0, description: "Final learning rate ('cosine' schedule)." },
  },
} as const;

export class SpecError extends Error {
  override name = 'SpecError';
}

const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: true });
const validateTrain = ajv.compile(trainSpecSchema);
const validateHead = ajv.compile(headSpecSchema);

function describe(errors: ErrorObject[] | null | undefined, what: string): string {
  const lines = (errors ?? [])
    .filter((e) => e.keyword !== 'if' && e.keyword !== 'anyOf')
    .map((e) => `${what}${e.instancePath.replace(/\//g, '.')} ${e.message}${e.keyword === 'additionalProperties' ? ` '${(e.params as { additionalProperty: string }).additionalProperty}'` : ''}`);
  return [...new Set(lines)].join('; ');
}

/** Validates training parameters and fills in defaults; throws SpecError on nonsense. */
export function parseTrainSpec(input: unknown = {}): TrainSpec {
  const spec = structuredClone(input ?? {}) as Record<string, unknown>;
  if (!validateTrain(spec)) throw new SpecError(`invalid training parameters: ${describe(validateTrain.errors, 'train')}`);
  const s = spec as unknown as TrainSpec;
  for (const key of ['lr', 'eps', 'momentum', 'dampening', 'weightDecay', 'minDelta', 'lrGamma', 'lrMin'] as const)
    if (!Number.isFinite(s[key])) throw new SpecError(`invalid training parameters: train.${key} must be a finite number`);
  if (s.nesterov && (s.momentum <= 0 || s.dampening !== 0))
    throw new SpecError('invalid training parameters: nesterov momentum needs momentum > 0 and dampening 0');
  if (s.lrSchedule === 'cosine' && s.lrMin > s.lr)
    throw new SpecError(`invalid training parameters: lrMin (${s.lrMin}) is above lr (${s.lr})`);
  return s;
}

/** Validates a head definition and fills in defaults; throws SpecError on nonsense. */
export function parseHeadSpec(input: unknown = {}): HeadSpec {
  const spec = structuredClone(input ?? {}) as Record<string, unknown>;
  if (!validateHead(spec)) throw new SpecError(`invalid head: ${describe(validateHead.errors, 'head')}`);
  const s = spec as { kind: 'linear' | 'mlp'; hidden: number[]; dropout: number; seed: number };
  return s.kind === 'mlp'
    ? { kind: 'mlp', hidden: s.hidden, dropout: s.dropout, seed: s.seed }
    : { kind: 'linear', seed: s.seed };
}

/** The learning rate of a (0-based) epoch under the spec's schedule. */
export function learningRate(spec: TrainSpec, epochIndex: number): number {
  switch (spec.lrSchedule) {
    case 'constant':
      return spec.lr;
    case 'step':
      return spec.lr * Math.pow(spec.lrGamma, Math.floor(epochIndex / spec.lrStepEpochs));
    case 'cosine':
      return spec.epochs <= 1
        ? spec.lr
        : spec.lrMin + ((spec.lr - spec.lrMin) * (1 + Math.cos((Math.PI * epochIndex) / spec.epochs))) / 2;
  }
}
