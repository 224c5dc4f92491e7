// `backbone.load`: the pretrained model, by catalogue name, path or URL,
// verified and described (its image input and outputs).
import { Type } from '@sinclair/typebox';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { backboneKind, type BackboneValue, backboneValueJson, writeBackboneModel } from '../artifacts/backbone.js';
import { expectedSha256, parseModelReference, resolveModel } from '../models/resolve.js';
import { describeModel } from '../onnx/inspect.js';
import { defineParams, type Static } from '../params/define.js';
import { parseModel } from '../onnx/model.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep } from '../runner/step.js';

const paramsSchema = defineParams({
  model: Type.String({
    minLength: 1,
    description: 'Catalogue name (e.g. mobilenetv2-12-int8, resnet50-v1-12), a path to an .onnx file, or an https URL.',
  }),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'Required with a URL: the file is verified against it.' })),
});

export const backboneStep = defineStep<Static<typeof paramsSchema>>({
  type: 'backbone.load',
  version: 1,
  produces: backboneKind.name,
  description: 'Loads a pretrained ONNX image classifier: a catalogue name, a local .onnx path, or a URL with its sha256.',
  paramsSchema,

  async dependencies(params, ctx) {
    const ref = parseModelReference(params.model, params.sha256, ctx.projectDir);
    // A catalogue name or URL promises its hash; a local file is hashed.
    const sha256 = ref.kind === 'path' ? await ctx.hashPath(ref.path) : expectedSha256(ref);
    return { sha256 };
  },

  paths(params) {
    const ref = parseModelReference(params.model, params.sha256, '/');
    return ref.kind === 'path' ? { reads: [{ param: 'model', path: params.model, what: 'model file' }] } : {};
  },

  async run(ctx, params) {
    const ref = parseModelReference(params.model, params.sha256, ctx.projectDir);
    const resolved = await resolveModel(ref, {
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress(Math.round(done / 1e6), total ? Math.round(total / 1e6) : undefined, 'MB'),
      onWarning: (m) => ctx.warn(m),
      // Stat-trusted: a model hashed before (by this stage's fingerprint, or an earlier run) is not read again for it.
      hashFile: (file) => ctx.hashPath(file),
    });
    const bytes = await readFile(resolved.file);
    // The bytes read are the bytes hashed: unchanged stat since the hash (stat only, no second read).
    if ((await ctx.hashPath(resolved.file)) !== resolved.sha256) {
      throw new StepFailure(`${resolved.file} changed while it was being read; run again once it is written completely.`);
    }
    const description = describeModel(parseModel(bytes, resolved.source));
    const { input } = description;
    ctx.log(`${path.basename(resolved.file)}: input ${input.name} ${input.layout} ${input.width ?? '?'}x${input.height ?? '?'}, ${description.outputs.length} output(s)`);
    // Written from the bytes in hand: the source is not read a second time by a copy.
    await writeBackboneModel(ctx.outDir, bytes);
    const pre = resolved.entry?.preprocessing;
    const value: BackboneValue = {
      model: params.model,
      sha256: resolved.sha256,
      source: resolved.source,
      input: { name: input.name, layout: input.layout, height: input.height, width: input.width, batch: input.batch },
      outputs: description.outputs.map((o) => ({ name: o.name, dims: o.dims ? [...o.dims] : null })),
      preprocessing: pre
        ? {
            // Catalogue normalisation is stated on 0..255 or 0..1 pixels; tensors here are 0..1.
            mean: pre.pixelRange === '0..255' ? pre.mean.map((m) => m / 255) : [...pre.mean],
            std: pre.pixelRange === '0..255' ? pre.std.map((s) => s / 255) : [...pre.std],
            resizeShorterSide: pre.resizeShorterSide,
            cropSize: pre.cropSize,
          }
        : null,
    };
    return { value: backboneValueJson(value) };
  },
});
