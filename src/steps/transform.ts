// `images.transform`: the resolved preprocessing (resize, crop, normalisation,
// optional augmentation). Its artifact is the recipe, applied as images stream
// into the backbone: transformed tensors of a large data set are too big to store.
import { backboneKind, backboneValue } from '../artifacts/backbone.js';
import { transformKind, writeTransform } from '../artifacts/transform.js';
import { resolveTransform, transformSpecSchema, type TransformSpecInput } from '../images/transform-spec.js';
import { defineStep } from '../runner/step.js';

export const transformStep = defineStep<TransformSpecInput>({
  type: 'images.transform',
  version: 1,
  description: "Resize, centre crop and normalise (ImageNet or the backbone's own statistics), EXIF orientation, any colour model to RGB; optional augmentation.",
  inputs: { backbone: { description: 'the backbone.load stage: input size, layout and normalisation', kind: backboneKind.name, optional: true } },
  produces: transformKind.name,
  paramsSchema: transformSpecSchema as unknown as Record<string, unknown>,
  async run(ctx, params, inputs) {
    const backbone = inputs.backbone ? backboneValue(inputs.backbone) : undefined;
    const pre = backbone?.preprocessing;
    const partial: TransformSpecInput = {
      ...(pre ? { mean: pre.mean as [number, number, number], std: pre.std as [number, number, number] } : {}),
      ...params,
    };
    const spec = resolveTransform(partial, backbone ? { layout: backbone.input.layout, height: backbone.input.height, width: backbone.input.width } : undefined);
    return { value: await writeTransform(ctx.outDir, spec) };
  },
});
