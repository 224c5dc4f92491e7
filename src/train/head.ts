// The classification head that replaces the backbone's classifier: its
// definition (linear or a small MLP), its weights, and their initialisation.
import { Type } from '@sinclair/typebox';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { DataError } from './data.js';
import { Prng } from './prng.js';

export type HeadSpec =
  | { kind: 'linear'; seed?: number }
  | { kind: 'mlp'; hidden: number[]; dropout: number; seed?: number };

/** One fully connected layer, `y = x · weightᵀ + bias`; weight is row-major [outFeatures, inFeatures]. */
export interface HeadLayer {
  weight: Float32Array;
  bias: Float32Array;
  inFeatures: number;
  outFeatures: number;
}

/** The layers in order; every layer but the last is followed by ReLU (and dropout while training). */
export interface HeadWeights {
  layers: HeadLayer[];
}

export const MAX_HIDDEN_LAYERS = 8;
export const MAX_LAYER_WIDTH = 65536;

/** The head definition (the head.define step's parameters): its JSON Schema, its parameter type and its defaults. */
export const headSpecSchema = defineParams(
  {
    kind: StringEnum(['linear', 'mlp'], {
      default: 'linear',
      description: "'linear': one Linear(features, classes) layer. 'mlp': hidden layers with ReLU and dropout before the final Linear.",
    }),
    hidden: Type.Array(Type.Integer({ minimum: 1, maximum: MAX_LAYER_WIDTH }), {
      maxItems: MAX_HIDDEN_LAYERS,
      default: [],
      description: 'Widths of the hidden layers, in order (mlp only), e.g. [512].',
    }),
    dropout: Type.Number({
      minimum: 0,
      maximum: 0.95,
      default: 0,
      description: 'Probability of zeroing each hidden activation while training (mlp only); 0 disables dropout.',
    }),
    seed: Type.Integer({
      minimum: 0,
      maximum: 4294967295,
      default: 0,
      description: 'Seed of the initial weights: the same seed gives the same weights.',
    }),
  },
  {
    $id: 'tlpipe:head',
    title: 'Classification head',
    description:
      'The new head trained on the frozen backbone features: a single linear layer, or an MLP (Linear → ReLU → Dropout, repeated, then Linear).',
    if: { properties: { kind: { const: 'mlp' } }, required: ['kind'] },
    then: { required: ['hidden'], properties: { hidden: { type: 'array', minItems: 1 } } },
    else: { properties: { hidden: { type: 'array', maxItems: 0 }, dropout: { type: 'number', const: 0 } } },
  },
);

/** The parameters as analysis hands them over: every field set. */
export type HeadParams = Static<typeof headSpecSchema>;

/**
 * The parameters as a HeadSpec. The schema's if/then/else makes a linear
 * head's `hidden` empty and its dropout 0; every key is kept, so the spec
 * recorded in the head file is the parameters as written.
 */
export function headSpecOf(params: HeadParams): HeadSpec {
  return params.kind === 'mlp' ? { ...params, kind: 'mlp' } : { ...params, kind: 'linear' };
}

/** Layer widths from input to output: [inFeatures, ...hidden, classes]. */
export function layerWidths(spec: HeadSpec, inFeatures: number, classes: number): number[] {
  return [inFeatures, ...(spec.kind === 'mlp' ? spec.hidden : []), classes];
}

export function dropoutOf(spec: HeadSpec): number {
  return spec.kind === 'mlp' ? spec.dropout : 0;
}

/**
 * Fresh weights as PyTorch's nn.Linear initialises them: weight and bias both
 * uniform in ±1/sqrt(inFeatures) (kaiming_uniform with a = sqrt(5)), drawn
 * from a generator seeded with `spec.seed`, layer by layer, weight then bias.
 */
export function initHead(spec: HeadSpec, inFeatures: number, classes: number): HeadWeights {
  checkHeadShape(spec, inFeatures, classes);
  const rng = new Prng(spec.seed ?? 0, 1);
  const widths = layerWidths(spec, inFeatures, classes);
  const layers: HeadLayer[] = [];
  for (let l = 0; l + 1 < widths.length; l++) {
    const inF = widths[l]!;
    const outF = widths[l + 1]!;
    const bound = 1 / Math.sqrt(inF);
    const uniform = () => (2 * rng.uniform() - 1) * bound;
    const weight = new Float32Array(outF * inF);
    for (let i = 0; i < weight.length; i++) weight[i] = uniform();
    const bias = new Float32Array(outF);
    for (let i = 0; i < bias.length; i++) bias[i] = uniform();
    layers.push({ weight, bias, inFeatures: inF, outFeatures: outF });
  }
  return { layers };
}

/** The head against the data it is for; the spec's own fields were checked by its schema at analysis. */
export function checkHeadShape(spec: HeadSpec, inFeatures: number, classes: number): void {
  if (!Number.isInteger(inFeatures) || inFeatures < 1) throw new DataError(`feature width must be a positive integer, got ${inFeatures}`);
  if (!Number.isInteger(classes) || classes < 2) throw new DataError(`a classifier needs at least 2 classes, got ${classes}`);
  if (spec.kind === 'mlp' && spec.hidden.length === 0) throw new DataError("an 'mlp' head needs at least one hidden layer");
}

/** Checks that weights chain correctly (each layer's input is the previous layer's output). */
export function checkWeights(weights: HeadWeights, inFeatures?: number): void {
  if (weights.layers.length === 0) throw new RangeError('head has no layers');
  let width = inFeatures ?? weights.layers[0]!.inFeatures;
  weights.layers.forEach((layer, l) => {
    if (layer.inFeatures !== width)
      throw new RangeError(`layer ${l} expects ${layer.inFeatures} inputs but receives ${width}`);
    if (layer.weight.length !== layer.outFeatures * layer.inFeatures)
      throw new RangeError(`layer ${l} weight has ${layer.weight.length} values, expected ${layer.outFeatures}×${layer.inFeatures}`);
    if (layer.bias.length !== layer.outFeatures)
      throw new RangeError(`layer ${l} bias has ${layer.bias.length} values, expected ${layer.outFeatures}`);
    width = layer.outFeatures;
  });
}

export function cloneWeights(weights: HeadWeights): HeadWeights {
  return {
    layers: weights.layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() })),
  };
}

export function classCount(weights: HeadWeights): number {
  return weights.layers[weights.layers.length - 1]!.outFeatures;
}

export function featureWidth(weights: HeadWeights): number {
  return weights.layers[0]!.inFeatures;
}
