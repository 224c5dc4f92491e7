// The project's image loader (src/images/preprocess.ts, default ImageNet
// transform for a 224×224 NCHW input) as a loader module, so that
// extractFeatures can run it in worker threads (ExtractOptions.loaderModule).
import sharp from 'sharp';
import { loadImageTensorInto } from '../src/images/preprocess.js';
import { resolveTransform } from '../src/images/transform-spec.js';

export interface ImageNetLoaderOptions {
  height: number;
  width: number;
  /** sharp.concurrency: libvips threads per image. */
  libvipsThreads?: number;
  /** sharp's operation cache; off by default here, since no file is decoded twice. */
  sharpCache?: boolean;
}

export function createLoader(options: ImageNetLoaderOptions) {
  if (options.libvipsThreads !== undefined) sharp.concurrency(options.libvipsThreads);
  sharp.cache(options.sharpCache ?? false);
  const spec = resolveTransform({}, { layout: 'NCHW', height: options.height, width: options.width });
  return (file: string, target: Float32Array, offset: number) => loadImageTensorInto(file, spec, target, offset);
}
