// The trained head as one self-describing binary artifact:
//
//   bytes 0–7   magic "TLHEAD\0\x01" (format version 1)
//   bytes 8–11  header length H, uint32 little-endian
//   12 … 12+H   header, UTF-8 JSON: { spec, classes, layers: [{ inFeatures, outFeatures }], metadata }
//   then zero padding to a multiple of 4 bytes
//   then, layer by layer, weight ([out, in] row-major) and bias as float32 little-endian
//
// Compact (4 bytes per parameter), readable without this code (the header is
// plain JSON), and checked for truncation when read.
import { ExpectedFailure } from '../failure.js';
import { checkWeights, type HeadSpec, type HeadWeights } from './head.js';

const MAGIC = Uint8Array.from([0x54, 0x4c, 0x48, 0x45, 0x41, 0x44, 0x00, 0x01]); // "TLHEAD" 0 1

export interface TrainedHead {
  spec: HeadSpec;
  /** Class names, index = output position. */
  classes: string[];
  weights: HeadWeights;
  /** Free-form JSON-serialisable facts (best epoch, metrics, backbone…). */
  metadata?: Record<string, unknown>;
}

interface Header {
  format: 'tlpipe-head';
  version: 1;
  spec: HeadSpec;
  classes: string[];
  layers: { inFeatures: number; outFeatures: number }[];
  metadata?: Record<string, unknown>;
}

export class HeadFormatError extends ExpectedFailure {
  override name = 'HeadFormatError';
  readonly reason = 'data';
}

export function encodeHead(head: TrainedHead): Uint8Array {
  checkWeights(head.weights);
  const { layers } = head.weights;
  const classes = layers[layers.length - 1]!.outFeatures;
  if (head.classes.length !== classes)
    throw new RangeError(`${head.classes.length} class names for a head with ${classes} outputs`);
  const header: Header = {
    format: 'tlpipe-head',
    version: 1,
    spec: head.spec,
    classes: head.classes,
    layers: layers.map((l) => ({ inFeatures: l.inFeatures, outFeatures: l.outFeatures })),
    ...(head.metadata ? { metadata: head.metadata } : {}),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = align4(12 + json.length);
  const floats = layers.reduce((n, l) => n + l.weight.length + l.bias.length, 0);
  const out = new Uint8Array(dataStart + floats * 4);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  // dataStart is a multiple of 4 in a fresh buffer, so a Float32Array view is aligned.
  const data = new Float32Array(out.buffer, dataStart, floats);
  let at = 0;
  for (const l of layers) {
    data.set(l.weight, at);
    at += l.weight.length;
    data.set(l.bias, at);
    at += l.bias.length;
  }
  return out;
}

export function decodeHead(bytes: Uint8Array): TrainedHead {
  if (bytes.length < 12 || !MAGIC.every((b, i) => bytes[i] === b))
    throw new HeadFormatError('not a tlpipe head file (bad magic bytes)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > bytes.length) throw new HeadFormatError('truncated head file (header)');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength))) as Header;
  } catch (error) {
    throw new HeadFormatError(`corrupt head file header: ${(error as Error).message}`);
  }
  if (header.format !== 'tlpipe-head' || header.version !== 1)
    throw new HeadFormatError(`unsupported head file format ${header.format} version ${header.version}`);
  const dataStart = align4(12 + headerLength);
  const floats = header.layers.reduce((n, l) => n + l.inFeatures * l.outFeatures + l.outFeatures, 0);
  if (bytes.length !== dataStart + floats * 4)
    throw new HeadFormatError(`head file has ${bytes.length} bytes, expected ${dataStart + floats * 4}`);
  // Copy so the result is aligned and independent of the input buffer. (A Node
  // Buffer's own slice() shares memory, so use Uint8Array's, which copies.)
  const data = new Float32Array(Uint8Array.prototype.slice.call(bytes, dataStart).buffer);
  let at = 0;
  const take = (n: number) => data.slice(at, (at += n));
  const weights: HeadWeights = {
    layers: header.layers.map(({ inFeatures, outFeatures }) => ({
      weight: take(inFeatures * outFeatures),
      bias: take(outFeatures),
      inFeatures,
      outFeatures,
    })),
  };
  checkWeights(weights);
  return { spec: header.spec, classes: header.classes, weights, ...(header.metadata ? { metadata: header.metadata } : {}) };
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
