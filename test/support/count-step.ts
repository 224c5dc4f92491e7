// A user step for tests: it appends a line to $COUNT_LOG each time it runs (so
// tests prove cache hits by counting, not by reading logs), can do its work in
// committed chunks (to test resume), and concatenates its inputs' outputs.
export const countStepSource = `
import fs from 'node:fs';
import path from 'node:path';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  type: 'count',
  version: Number(process.env.COUNT_STEP_VERSION ?? 1),
  description: 'counts its runs',
  inputs: { any: true },
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      value: {},
      file: { type: 'string' },
      chunks: { type: 'integer', minimum: 0, default: 0 },
      chunkDelayMs: { type: 'integer', minimum: 0, default: 0 },
      out: { type: 'string' },
    },
  },
  async dependencies(params, ctx) {
    return params.file ? { file: await ctx.hashPath(params.file) } : null;
  },
  async run(ctx, params, inputs) {
    const log = process.env.COUNT_LOG;
    fs.appendFileSync(log, ctx.stage + '\\n');
    const chunks = ctx.chunks();
    const done = await chunks.readAll();
    for (let i = done.length; i < params.chunks; i++) {
      ctx.signal.throwIfAborted();
      await sleep(params.chunkDelayMs);
      fs.appendFileSync(log, ctx.stage + ':chunk' + i + '\\n');
      await chunks.append(Buffer.from('chunk ' + i + ' of ' + ctx.stage + '\\n'));
    }
    const upstream = Object.keys(inputs).sort().map((k) => fs.readFileSync(inputs[k].file('out.txt'), 'utf8')).join('');
    const work = (await chunks.readAll()).map((b) => b.toString()).join('');
    const text = ctx.stage + '=' + JSON.stringify(params.value ?? null) + '\\n' + work + upstream;
    fs.writeFileSync(path.join(ctx.outDir, 'out.txt'), text);
    const publish = params.out ? [{ file: 'out.txt', to: ctx.outputPath(params.out) }] : [];
    return { value: { bytes: text.length }, metrics: { chunks: params.chunks }, publish };
  },
};
`;
