// Default images per inference call (features.extract's `batchSize` when the
// model has no fixed batch size). Its own module so that the step can describe
// its parameters without loading the extractor and onnxruntime.

/**
 * Images per inference call on the CPU. Measured on 2 cores with MobileNetV2-int8:
 * inference alone costs the same CPU time per image from batch 8 to 32, but with
 * decoding on the same cores smaller batches run cheaper (their activations
 * evict less of the decoders' cache) and peak RSS drops (~200 MiB at 8, ~330 at 32).
 */
export const DEFAULT_BATCH_SIZE = 8;
/**
 * Images per inference call on the CPU when inference dominates (threads.ts):
 * decoding hardly competes, so the batch that inference alone runs cheapest.
 * Measured with ResNet-50 fp32 on 2 cores: see docs/performance.md.
 */
export const INFERENCE_BOUND_BATCH_SIZE = 16;
/** On a GPU, larger batches keep the device busy (not measured here: no GPU). */
export const DEFAULT_CUDA_BATCH_SIZE = 64;

