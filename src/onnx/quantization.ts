// Finds the scale and zero point of a quantized tensor, so that it can be
// turned back into float with a DequantizeLinear.
import { type OnnxGraph, type OnnxNode, producers } from './model.js';

export interface QuantizationParams {
  scale: string;
  /** Absent when the producer omits it (the zero point is then 0). */
  zeroPoint?: string;
}

/** For each quantizing operator: the input positions of its output's scale and zero point. */
const OUTPUT_PARAMS: Record<string, [number, number]> = {
  QuantizeLinear: [1, 2],
  QLinearConv: [6, 7],
  QLinearMatMul: [6, 7],
  QLinearAdd: [6, 7],
  QLinearMul: [6, 7],
  QLinearGlobalAveragePool: [3, 4],
  QLinearAveragePool: [3, 4],
  QLinearReduceMean: [3, 4],
  QLinearSigmoid: [3, 4],
  QLinearLeakyRelu: [3, 4],
  QLinearSoftmax: [3, 4],
  QLinearConcat: [0, 1],
  QGemm: [7, 8],
};

/** For each quantized operand of a consumer: its own scale and zero point positions. */
const INPUT_PARAMS: Record<string, Record<number, [number, number]>> = {
  DequantizeLinear: { 0: [1, 2] },
  QLinearConv: { 0: [1, 2] },
  QLinearMatMul: { 0: [1, 2], 3: [4, 5] },
  QLinearAdd: { 0: [1, 2], 3: [4, 5] },
  QLinearMul: { 0: [1, 2], 3: [4, 5] },
  QLinearGlobalAveragePool: { 0: [1, 2] },
  QLinearAveragePool: { 0: [1, 2] },
  QLinearReduceMean: { 0: [1, 2] },
  QLinearSigmoid: { 0: [1, 2] },
  QLinearLeakyRelu: { 0: [1, 2] },
  QLinearSoftmax: { 0: [1, 2] },
  QGemm: { 0: [1, 2], 3: [4, 5] },
};

/** Operators that move or reshape quantized values without changing their scale. */
const SCALE_PRESERVING = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose', 'Identity', 'MaxPool']);

function paramsAt(node: OnnxNode, [scaleAt, zeroAt]: [number, number]): QuantizationParams | undefined {
  const scale = node.inputs[scaleAt];
  if (!scale) return undefined;
  const zeroPoint = node.inputs[zeroAt];
  return zeroPoint ? { scale, zeroPoint } : { scale };
}

/**
 * The quantization of `tensor`, or undefined when it is a float tensor.
 * Read from the operator that produced it (looking through reshapes), else
 * from an operator that consumes it as a quantized operand.
 */
export function quantizationOf(graph: OnnxGraph, tensor: string): QuantizationParams | undefined {
  const producedBy = producers(graph);
  for (let name = tensor, hops = 0; hops < 64; hops++) {
    const node = producedBy.get(name);
    if (!node) break;
    const outputParams = OUTPUT_PARAMS[node.opType];
    if (outputParams) return paramsAt(node, outputParams);
    if (!SCALE_PRESERVING.has(node.opType)) break;
    name = node.inputs[0] ?? '';
  }
  for (const node of graph.nodes) {
    const operands = INPUT_PARAMS[node.opType];
    if (!operands) continue;
    for (const [position, params] of Object.entries(operands)) {
      if (node.inputs[Number(position)] === tensor) return paramsAt(node, params);
    }
  }
  return undefined;
}
