// `node dist/bench/dequantize.js INT8.onnx FLOAT.onnx`: a QLinear-format int8
// classifier (such as the fixtures' MobileNetV2-int8) rewritten as the float32
// model it stands for (src/onnx/dequantize.ts). The only
// pretrained weights this machine has are int8 ones: this gives
// backbone.quantize a float model with real weights to be judged on.
// Bench tooling, never in CI: it handles the operators that model uses.
import { readFile, writeFile } from 'node:fs/promises';
import { dequantizeModel } from '../src/onnx/dequantize.js';
import { encodeModel, parseModel } from '../src/onnx/model.js';

async function main(): Promise<void> {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) throw new Error('usage: node dist/bench/dequantize.js INT8.onnx FLOAT.onnx');
  const model = parseModel(await readFile(input), input);
  dequantizeModel(model);
  const g = model.graph;
  await writeFile(output, encodeModel(model));
  console.log(`wrote ${output}: ${g.nodes.length} float nodes, ${g.initializers.length} initializers`);
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
