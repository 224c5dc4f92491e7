// A user step: plain JavaScript, loaded from the path a pipeline names
// (`uses: ../examples/steps/histogram.mjs`, relative to the pipeline file).
// It reads the CSV artifact of an upstream stage and draws a text histogram.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export default {
  type: 'example.histogram',
  // Bump when the output changes for the same inputs: old artifacts stop matching.
  version: 1,
  description: 'Draws a text histogram of a word,count CSV.',
  // The upstream stage is named under `inputs: {counts: <stage>}`; `kind` says
  // it must be an exec stage's outputs (tlpipe validate rejects anything else).
  inputs: { counts: { description: 'a stage whose artifact holds a word,count CSV', kind: 'command-output' } },
  // No `produces`: the histogram is an untyped artifact, which only inputs
  // that accept any artifact (exec, or a user step input without a kind) take.
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['file', 'to'],
    properties: {
      file: { type: 'string', description: 'The CSV inside the upstream artifact.' },
      to: { type: 'string', description: 'Where to write the histogram, inside the project.' },
      width: { type: 'integer', minimum: 1, maximum: 200, default: 20 },
    },
  },
  async run(ctx, params, inputs) {
    const csv = await readFile(inputs.counts.file(params.file), 'utf8');
    const rows = csv.trim().split('\n').map((line) => line.split(','));
    const max = Math.max(...rows.map(([, n]) => Number(n)));
    const text = rows.map(([word, n]) => `${word.padEnd(8)} ${'#'.repeat(Math.round((Number(n) / max) * params.width))} ${n}`).join('\n');
    await writeFile(path.join(ctx.outDir, 'histogram.txt'), `${text}\n`);
    ctx.log(`${rows.length} bars`);
    return { value: { bars: rows.length }, metrics: { bars: rows.length }, publish: [{ file: 'histogram.txt', to: ctx.outputPath(params.to) }] };
  },
};
