// The feature stage: a frozen backbone's forward pass over an image dataset,
// streamed with bounded memory, inference in worker threads.
export { extractFeatures } from './extract.js';
export { DEFAULT_BATCH_SIZE, DEFAULT_CUDA_BATCH_SIZE, INFERENCE_BOUND_BATCH_SIZE } from './batch-size.js';
export type { ChosenSettings, ExtractOptions, FeatureBatch, ImageLoader } from './extract.js';
export type { LoaderModule } from './loader-protocol.js';
export { readModelInfo } from './model-info.js';
export type { ModelInfo, TensorInfo } from './model-info.js';
export { planThreads, currentUvThreadpoolSize, DECODE_CPU_MS_PER_IMAGE, inferenceDominates, likelyInferenceBound, machineBusy } from './threads.js';
export type { ThreadPlan } from './threads.js';
