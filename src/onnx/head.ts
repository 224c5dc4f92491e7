// Finds a classifier's head: the last dense layer (Gemm, MatMul, QLinearMatMul)
// after the global pooling that ends the convolutional trunk. The tensor that
// feeds it is the feature vector transfer learning wants.
import { type OnnxModel, type OnnxNode, intAttribute, intsAttribute } from './model.js';
import type { ImageLayout } from './inspect.js';
import type { ShapeFacts } from './shapes.js';

export interface ClassifierHead {
  /** The pooling that produces the features. */
  pooling: OnnxNode;
  /** The first node of the head (the dense layer). */
  dense: OnnxNode;
  /** The tensor feeding the dense layer: where the cut goes. */
  featureTensor: string;
  /** The feature width read from the dense layer's weight, when it is a constant. */
  weightInFeatures: number | null;
  /** Gemm only takes 2-D inputs, so its input is known to be [N, F] already. */
  featuresAre2D: boolean;
}

/** For each dense operator: the input positions of its data operand and its weight. */
const DENSE_OPERANDS: Record<string, [number, number]> = {
  Gemm: [0, 1],
  MatMul: [0, 1],
  MatMulInteger: [0, 1],
  QLinearMatMul: [0, 3],
  QGemm: [0, 3],
};

const GLOBAL_POOLS = new Set(['GlobalAveragePool', 'QLinearGlobalAveragePool', 'GlobalMaxPool']);

function sameSet(a: number[], b: number[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

/** Whether `node` pools over the whole spatial extent of a 4-D feature map. */
function isGlobalPooling(node: OnnxNode, layout: ImageLayout, shapes: ShapeFacts): boolean {
  if (GLOBAL_POOLS.has(node.opType)) return true;
  if (node.opType === 'ReduceMean' || node.opType === 'QLinearReduceMean') {
    const axes = intsAttribute(node, 'axes') ?? shapes.constantValues(node.inputs[1] ?? '');
    if (!axes) return false;
    const normalized = axes.map((a) => (a < 0 ? a + 4 : a));
    // A channels-last model may keep its feature maps channels-last to the end.
    return sameSet(normalized, [2, 3]) || (layout === 'NHWC' && sameSet(normalized, [1, 2]));
  }
  if (node.opType === 'AveragePool' || node.opType === 'QLinearAveragePool') {
    const kernel = intsAttribute(node, 'kernel_shape');
    const inputDims = shapes.declaredDims(node.inputs[0] ?? '');
    const outputDims = shapes.declaredDims(node.outputs[0] ?? '');
    if (outputDims?.length === 4) return outputDims[2] === 1 && outputDims[3] === 1;
    if (kernel && inputDims?.length === 4) return kernel[0] === inputDims[2] && kernel[1] === inputDims[3];
    // Without shapes it cannot be told apart from a local pooling; the dense layer after it decides.
    return (intAttribute(node, 'ceil_mode') ?? 0) === 0;
  }
  return false;
}

/** The constant operand of a dense node is its weight; the other one carries the data. */
function denseOperands(
  node: OnnxNode,
  shapes: ShapeFacts,
): { data: string; weight: string; swapped: boolean } | undefined {
  const positions = DENSE_OPERANDS[node.opType];
  if (!positions) return undefined;
  const [dataAt, weightAt] = positions;
  const first = node.inputs[dataAt] ?? '';
  const second = node.inputs[weightAt] ?? '';
  if (shapes.constantDims(first) && !shapes.constantDims(second)) return { data: second, weight: first, swapped: true };
  return { data: first, weight: second, swapped: false };
}

/** How many input features a dense node's weight takes, when its weight is a constant. */
function weightInFeatures(node: OnnxNode, weight: string, shapes: ShapeFacts): number | null {
  const dims = shapes.constantDims(weight);
  if (!dims || dims.length !== 2) return null;
  const transposed = (node.opType === 'Gemm' || node.opType === 'QGemm') && (intAttribute(node, 'transB') ?? 0) !== 0;
  return transposed ? dims[1]! : dims[0]!;
}

/** The classifier head, or undefined when the graph has no dense layer after a global pooling. */
export function findClassifierHead(model: OnnxModel, layout: ImageLayout, shapes: ShapeFacts): ClassifierHead | undefined {
  // Forward sweep (nodes are topologically sorted): for each tensor, the most
  // recent pooling it depends on, so squeeze-excitation poolings inside the
  // trunk give way to the final one.
  const poolingBefore = new Map<string, { node: OnnxNode; order: number }>();
  let head: ClassifierHead | undefined;
  model.graph.nodes.forEach((node, order) => {
    let pooling: { node: OnnxNode; order: number } | undefined;
    for (const input of node.inputs) {
      const p = poolingBefore.get(input);
      if (p && (!pooling || p.order > pooling.order)) pooling = p;
    }
    if (isGlobalPooling(node, layout, shapes)) pooling = { node, order };
    if (pooling) for (const o of node.outputs) poolingBefore.set(o, pooling);
    const operands = denseOperands(node, shapes);
    const dataPooling = operands && poolingBefore.get(operands.data);
    if (operands && dataPooling) {
      head = {
        pooling: dataPooling.node,
        dense: node,
        featureTensor: operands.data,
        // W·x instead of x·W: the weight's layout says nothing certain about F.
        weightInFeatures: operands.swapped ? null : weightInFeatures(node, operands.weight, shapes),
        featuresAre2D: node.opType === 'Gemm' || node.opType === 'QGemm',
      };
    }
  });
  return head;
}
