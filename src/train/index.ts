// Training the classification head on cached backbone features.
export { headSpecSchema, initHead, layerWidths, checkWeights, cloneWeights, type HeadSpec, type HeadLayer, type HeadWeights } from './head.js';
export {
  trainSpecSchema,
  parseTrainSpec,
  parseHeadSpec,
  learningRate,
  SpecError,
  type TrainSpec,
  type EngineChoice,
  type Device,
  type OptimizerName,
  type LrSchedule,
  type ClassWeightsSpec,
} from './spec.js';
export { DataError, resolveClassWeights, type TrainData, type LabelledFeatures } from './data.js';
export { train, type TrainOptions, type TrainResult, type EpochMetrics } from './train.js';
export type { EngineName } from './engine.js';
export { chooseEngine, chooseForwardEngine, macsPerSample, estimatedTrainingMs, estimatedMsPerEpoch, type EngineDecision } from './engine-choice.js';
export { evaluate, predict, type Evaluation, type Prediction, type PredictOptions } from './evaluate.js';
export { classificationMetrics, type ClassMetrics, type ClassificationMetrics } from './metrics.js';
export { encodeHead, decodeHead, HeadFormatError, type TrainedHead } from './serialize.js';
export { buildTrainGraph, buildEvalGraph, type TrainGraphOptions, type EvalGraphOptions, type GraphDtype } from './graph.js';
export { Prng } from './prng.js';
