// The runtime a worker computes with, as a job requires it: features depend
// on the onnxruntime and libvips builds and on the execution provider, so a
// worker with another build must not contribute to a run.
import { createRequire } from 'node:module';
import sharp from 'sharp';

export interface RuntimeVersions {
  onnxruntime: string;
  sharp: string;
  libvips: string;
  /** The JPEG decoder libvips uses. */
  jpeg: string;
  /** The execution provider: 'cpu' or 'cuda'. */
  device: 'cpu' | 'cuda';
}

const require = createRequire(import.meta.url);

export function runtimeVersions(device: 'cpu' | 'cuda'): RuntimeVersions {
  const ort = require('onnxruntime-node/package.json') as { version: string };
  return { onnxruntime: ort.version, sharp: sharp.versions.sharp ?? 'unknown', libvips: sharp.versions.vips, jpeg: (sharp.versions as Record<string, string | undefined>).mozjpeg ?? 'unknown', device };
}

/** What differs between the runtime a job needs and this one, in words; empty when they match. */
export function runtimeMismatch(needed: RuntimeVersions, have: RuntimeVersions): string[] {
  return (Object.keys(needed) as (keyof RuntimeVersions)[])
    .filter((k) => needed[k] !== have[k])
    .map((k) => `${k} ${have[k]} here, the job needs ${needed[k]}`);
}
