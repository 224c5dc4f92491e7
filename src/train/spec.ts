// What a training run is asked to do (optimiser, schedule, batches, early
// stopping...): one TypeBox definition gives its JSON Schema, its type and
// its defaults; plus the rules between fields and, for direct callers of the
// library, the validation that turns user input into a complete TrainSpec.
import { ExpectedFailure } from '../failure.js';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { headSpecSchema, type HeadSpec } from './head.js';

export const MAX_EPOCHS = 100000;
export const MAX_BATCH_SIZE = 1 << 20;
/** Early-stopping patience that patience 'auto' stands for. */
export const AUTO_PATIENCE = 10;
/** Default candidates of weightDecay 'auto': 10⁰ down to 10⁻⁶ in half decades. */
export const DEFAULT_WEIGHT_DECAY_GRID = Array.from({ length: 13 }, (_, i) => Number((10 ** (-i / 2)).toPrecision(2)));

const positiveFinite = (description: string, def: number, maximum = 1e6) =>
  Type.Number({ exclusiveMinimum: 0, maximum, default: def, description });

/** The training parameters, every one with a default: the JSON Schema and, below, the TrainSpec type. */
export const trainSpecProperties = {
  engine: StringEnum(['auto', 'onnx', 'typescript'], {
    default: 'auto',
    description:
      "'onnx': one onnxruntime run per batch (fast for large heads, can use CUDA). 'typescript': plain typed-array loops (fastest for small heads). 'auto': the faster one for this head's size.",
  }),
  device: StringEnum(['cpu', 'cuda'], {
    default: 'cpu',
    description: "Execution provider for the 'onnx' engine. 'cuda' needs onnxruntime-node installed with its CUDA provider.",
  }),
  optimizer: StringEnum(['adam', 'adamw', 'sgd', 'lbfgs'], {
    default: 'adam',
    description:
      "'adam' and 'sgd' as in PyTorch (weight decay added to the gradient); 'adamw' decouples weight decay. 'lbfgs' (linear heads): full-batch L-BFGS on the L2-regularised cross-entropy, run to convergence (tolerance, maxIterations); no learning rate, batches or epochs.",
  }),
  lr: positiveFinite('Learning rate.', 1e-3, 100),
  betas: Type.Unsafe<[number, number]>(
    Type.Array(Type.Number({ minimum: 0, exclusiveMaximum: 1 }), {
      minItems: 2,
      maxItems: 2,
      default: [0.9, 0.999],
      description: 'Adam/AdamW coefficients of the running averages of the gradient and its square.',
    }),
  ),
  eps: positiveFinite('Adam/AdamW term added to the denominator for numerical stability.', 1e-8, 1),
  momentum: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.9, description: 'SGD momentum (0: plain SGD).' }),
  dampening: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'SGD dampening of momentum.' }),
  nesterov: Type.Boolean({ default: false, description: 'SGD Nesterov momentum (needs momentum > 0 and dampening 0).' }),
  weightDecay: Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.Literal('auto')], {
    default: 0,
    description:
      "Weight decay: L2 penalty added to the gradient (adam, sgd) or decoupled (adamw); for lbfgs the strength λ of λ/2·‖W‖² (bias not penalised). 'auto': lbfgs picks it from weightDecayGrid by held-out accuracy on the validation split (k-fold on the training split without one); the other optimisers use 0.",
  }),
  weightDecayGrid: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 100 }), {
    minItems: 1,
    maxItems: 100,
    default: DEFAULT_WEIGHT_DECAY_GRID,
    description: "Candidate strengths for weightDecay 'auto'.",
  }),
  folds: Type.Integer({ minimum: 2, maximum: 20, default: 5, description: "Cross-validation folds of weightDecay 'auto' when there is no validation split." }),
  standardize: Type.Boolean({
    default: true,
    description:
      "Standardise every feature with the training split's mean and standard deviation; folded into the head's first layer afterwards, so prediction and the exported model take raw features.",
  }),
  tolerance: positiveFinite('lbfgs: stop when the largest gradient component is at most this.', 1e-4, 1),
  maxIterations: Type.Integer({ minimum: 1, maximum: 100000, default: 500, description: 'lbfgs: most iterations per solve.' }),
  batchSize: Type.Integer({ minimum: 1, maximum: MAX_BATCH_SIZE, default: 64, description: 'Samples per optimisation step.' }),
  epochs: Type.Integer({ minimum: 1, maximum: MAX_EPOCHS, default: 10, description: 'Passes over the training set.' }),
  seed: Type.Integer({
    minimum: 0,
    maximum: 4294967295,
    default: 0,
    description: 'Seed of the shuffling order and dropout masks: the same seed and data give the same results.',
  }),
  classWeights: Type.Union([Type.Literal('balanced'), Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 1e6 }), { minItems: 2 }), Type.Null()], {
    default: null,
    description:
      "Loss weight of each class, for imbalanced data: 'balanced' (n / (classes × class count)), one positive number per class, or null for equal weights. The loss is the weighted mean, as PyTorch's CrossEntropyLoss(weight=...).",
  }),
  patience: Type.Union([Type.Integer({ minimum: 1, maximum: MAX_EPOCHS }), Type.Null(), Type.Literal('auto')], {
    default: 'auto',
    description: `Early stopping: stop after this many epochs without validation-loss improvement; the best epoch’s weights are kept. null: no early stopping. 'auto': ${AUTO_PATIENCE} with a validation split, none without.`,
  }),
  minDelta: Type.Number({ minimum: 0, maximum: 1e6, default: 0, description: 'Smallest validation-loss decrease that counts as an improvement.' }),
  lrSchedule: StringEnum(['constant', 'step', 'cosine'], {
    default: 'constant',
    description: "'constant'; 'step': multiply by lrGamma every lrStepEpochs epochs; 'cosine': anneal from lr to lrMin over the epochs.",
  }),
  lrStepEpochs: Type.Integer({ minimum: 1, maximum: MAX_EPOCHS, default: 7, description: "Epochs between decays ('step' schedule)." }),
  lrGamma: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.1, description: "Decay factor ('step' schedule)." }),
  lrMin: Type.Number({ minimum: 0, maximum: 100, default: 0, description: "Final learning rate ('cosine' schedule)." }),
};

/** JSON Schema of the training parameters; every property has a default. */
export const trainSpecSchema = defineParams(trainSpecProperties, {
  $id: 'tlpipe:train',
  title: 'Head training',
  description: 'Trains the classification head on cached backbone features with cross-entropy loss.',
});

/** What a training run is asked to do, every field set (analysis fills the defaults). */
export type TrainSpec = Static<typeof trainSpecSchema>;
export type EngineChoice = TrainSpec['engine'];
export type Device = TrainSpec['device'];
export type OptimizerName = TrainSpec['optimizer'];
/** Optimisers that take steps on mini-batches (all but the full-batch 'lbfgs'). */
export type GradientOptimizerName = Exclude<OptimizerName, 'lbfgs'>;
export type LrSchedule = TrainSpec['lrSchedule'];
export type ClassWeightsSpec = TrainSpec['classWeights'];

/**
 * Rules between training parameters that a schema cannot state. `tlpipe
 * validate` reports them at their line (the head.train step's `check`);
 * parseTrainSpec applies them to direct callers of the library.
 */
export function trainSpecProblems(s: Pick<TrainSpec, 'nesterov' | 'momentum' | 'dampening' | 'lrSchedule' | 'lr' | 'lrMin'>): { at: string; message: string }[] {
  const problems: { at: string; message: string }[] = [];
  if (s.nesterov && (s.momentum <= 0 || s.dampening !== 0)) {
    problems.push({ at: 'nesterov', message: `nesterov momentum needs momentum > 0 and dampening 0 (momentum is ${s.momentum}, dampening ${s.dampening}).` });
  }
  if (s.lrSchedule === 'cosine' && s.lrMin > s.lr) {
    problems.push({ at: 'lrMin', message: `lrMin (${s.lrMin}) is above lr (${s.lr}): the cosine schedule anneals from lr down to lrMin.` });
  }
  return problems;
}

/** Every default filled in, nothing checked: for a spec analysis already validated (or a test's partial one). */
export function withTrainDefaults(partial: Partial<TrainSpec> = {}): TrainSpec {
  return Value.Default(trainSpecSchema, structuredClone(partial)) as TrainSpec;
}

export class SpecError extends ExpectedFailure {
  override name = 'SpecError';
  readonly reason = 'parameters';
}

// Compiled on first use: the pipeline path never calls these (analysis has validated).
let validators: { train: ValidateFunction; head: ValidateFunction } | undefined;
function libraryValidators() {
  if (!validators) {
    const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: true });
    validators = { train: ajv.compile(trainSpecSchema), head: ajv.compile(headSpecSchema) };
  }
  return validators;
}

function describe(errors: ErrorObject[] | null | undefined, what: string): string {
  const lines = (errors ?? [])
    .filter((e) => e.keyword !== 'if' && e.keyword !== 'anyOf')
    .map((e) => `${what}${e.instancePath.replace(/\//g, '.')} ${e.message}${e.keyword === 'additionalProperties' ? ` '${(e.params as { additionalProperty: string }).additionalProperty}'` : ''}`);
  return [...new Set(lines)].join('; ');
}

/** Validates training parameters and fills in defaults, for direct callers of the library; throws SpecError on nonsense. */
export function parseTrainSpec(input: unknown = {}): TrainSpec {
  const spec = structuredClone(input ?? {}) as Record<string, unknown>;
  const { train: validateTrain } = libraryValidators();
  if (!validateTrain(spec)) throw new SpecError(`invalid training parameters: ${describe(validateTrain.errors, 'train')}`);
  const s = spec as unknown as TrainSpec;
  for (const key of ['lr', 'eps', 'momentum', 'dampening', 'minDelta', 'lrGamma', 'lrMin', 'tolerance'] as const)
    if (!Number.isFinite(s[key])) throw new SpecError(`invalid training parameters: train.${key} must be a finite number`);
  if (s.weightDecay !== 'auto' && !Number.isFinite(s.weightDecay))
    throw new SpecError('invalid training parameters: train.weightDecay must be a finite number or auto');
  const [problem] = trainSpecProblems(s);
  if (problem) throw new SpecError(`invalid training parameters: ${problem.message}`);
  return s;
}

/** Validates a head definition and fills in defaults, for direct callers of the library; throws SpecError on nonsense. */
export function parseHeadSpec(input: unknown = {}): HeadSpec {
  const spec = structuredClone(input ?? {}) as Record<string, unknown>;
  const { head: validateHead } = libraryValidators();
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
