// `backbone.split`: the backbone cut for fine-tuning into a frozen bottom and
// a trainable top, at the last N blocks or a named tensor.
import { Type } from '@sinclair/typebox';
import { readFile } from 'node:fs/promises';
import { backboneKind, backboneModelPath } from '../artifacts/backbone.js';
import { splitBackboneKind, type SplitBackboneValue, writeSplitBackbone } from '../artifacts/split-backbone.js';
import { cutAtFeatures } from '../onnx/cut.js';
import { defineParams, type Static } from '../params/define.js';
import { defineStep } from '../runner/step.js';

const paramsSchema = defineParams({
  trainableBlocks: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 3,
    description: 'The last N blocks train (a block ends where a residual connection starts or ends); the convolutions after the last block train with it.',
  }),
  tensor: Type.Optional(Type.String({ minLength: 1, description: 'Cut at this tensor instead (every path from the image to the features must pass through it).' })),
});

export const splitStep = defineStep<Static<typeof paramsSchema>>({
  type: 'backbone.split',
  version: 1,
  description: 'Splits the backbone for fine-tuning: a frozen bottom (int8 stays int8) whose activations are computed once, and a trainable float32 top.',
  inputs: { backbone: { description: 'the backbone.load stage', kind: backboneKind.name } },
  produces: splitBackboneKind.name,
  paramsSchema,
  async run(ctx, params, inputs) {
    const bytes = new Uint8Array(await readFile(backboneModelPath(inputs.backbone!)));
    const source = `the ${inputs.backbone!.stage} model`;
    const { splitBackbone } = await import('../finetune/split.js'); // onnxruntime, only here
    const split = await splitBackbone(bytes, { trainableBlocks: params.tensor ? undefined : params.trainableBlocks, tensor: params.tensor, source });
    const frozen = await cutAtFeatures(bytes, { source });
    const trainable = split.top.params.reduce((a, p) => a + p.data.length, 0);
    const [C, H, W] = split.top.inputShape as [number, number, number];
    const blocks = split.candidates.find((c) => c.tensor === split.cutTensor)?.blocksAbove;
    ctx.log(
      `cut at "${split.cutTensor}" [${C}×${H}×${W}]${blocks ? ` (${blocks} block${blocks === 1 ? '' : 's'} above)` : ''}: ` +
        `${split.top.ops.filter((o) => o.op === 'conv').length} convolutions, ${trainable.toLocaleString('en-US')} parameters train` +
        (split.quantized ? ', dequantized to float32; the bottom stays int8' : ''),
    );
    const value: SplitBackboneValue = {
      cutTensor: split.cutTensor,
      inputShape: split.top.inputShape,
      activationWidth: C * H * W,
      featureWidth: split.featureWidth,
      quantized: split.quantized,
      codes: split.codes ?? null,
      candidates: split.candidates.map((c) => ({ tensor: c.tensor, blocksAbove: c.blocksAbove })),
      trainableParameters: trainable,
    };
    return {
      value: await writeSplitBackbone(ctx.outDir, { bottom: split.bottom.bytes, frozen: frozen.bytes, top: split.top }, value),
      metrics: { trainableParameters: trainable, activationWidth: C * H * W },
    };
  },
});
