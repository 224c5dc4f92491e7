// Static facts about tensor shapes, read from what the graph states (declared
// shapes, constants, the semantics of a few operators) without running it.
// Answers are "known" or null: never a guess.
import {
  type Dim,
  type OnnxGraph,
  type OnnxNode,
  type OnnxTensor,
  getAttribute,
  intAttribute,
  intsAttribute,
  producers,
  tensorValues,
} from './model.js';

/** Operators whose output has the rank of their first input. */
const RANK_PRESERVING = new Set([
  'Relu', 'Clip', 'Sigmoid', 'Tanh', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Elu', 'Selu', 'Softplus',
  'BatchNormalization', 'InstanceNormalization', 'LRN', 'Conv', 'QLinearConv', 'ConvInteger', 'MaxPool',
  'AveragePool', 'QLinearAveragePool', 'GlobalAveragePool', 'QLinearGlobalAveragePool', 'GlobalMaxPool',
  'DequantizeLinear', 'QuantizeLinear', 'Identity', 'Cast', 'Dropout', 'Softmax', 'Pad', 'Resize',
  'QLinearSigmoid', 'QLinearLeakyRelu', 'Transpose', 'Concat', 'QLinearConcat', 'Neg', 'Abs', 'Sqrt', 'Exp', 'Erf', 'Gelu',
]);
/** Broadcasting binary operators: the output rank is the larger input rank. */
const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'QLinearAdd', 'QLinearMul', 'Max', 'Min', 'Sum']);

export class ShapeFacts {
  private readonly producedBy: Map<string, OnnxNode>;
  private readonly declared = new Map<string, readonly Dim[]>();
  private readonly constants = new Map<string, OnnxTensor>();
  private readonly ranks = new Map<string, number | null>();

  constructor(graph: OnnxGraph) {
    this.producedBy = producers(graph);
    for (const v of [...graph.inputs, ...graph.initializerInputs, ...graph.valueInfo, ...graph.outputs]) {
      if (v.dims) this.declared.set(v.name, v.dims);
    }
    for (const t of graph.initializers) this.constants.set(t.name, t);
    for (const node of graph.nodes) {
      const value = getAttribute(node, 'value');
      if (node.opType === 'Constant' && value?.type === 'tensor' && node.outputs[0]) this.constants.set(node.outputs[0], value.value);
    }
  }

  /** The shape the file declares for a tensor (graph input/output, value_info, initializer). */
  declaredDims(name: string): readonly Dim[] | null {
    return this.declared.get(name) ?? this.constants.get(name)?.dims ?? null;
  }

  /** An initializer or Constant output of that name. */
  constant(name: string): OnnxTensor | undefined {
    return this.constants.get(name);
  }

  /** A constant's dims, looking through a DequantizeLinear or Transpose of it (quantized weights). */
  constantDims(name: string): readonly number[] | null {
    const direct = this.constants.get(name);
    if (direct) return direct.dims;
    const node = this.producedBy.get(name);
    if (node?.opType === 'DequantizeLinear' || node?.opType === 'Identity') return this.constantDims(node.inputs[0] ?? '');
    if (node?.opType === 'Transpose') {
      const dims = this.constantDims(node.inputs[0] ?? '');
      const perm = intsAttribute(node, 'perm') ?? dims?.map((_, i) => dims.length - 1 - i);
      return dims && perm ? perm.map((p) => dims[p]!) : null;
    }
    return null;
  }

  producer(name: string): OnnxNode | undefined {
    return this.producedBy.get(name);
  }

  /** The rank of a tensor, when the graph makes it certain. */
  rank(name: string): number | null {
    if (this.ranks.has(name)) return this.ranks.get(name)!;
    this.ranks.set(name, null); // guards against cycles in a malformed graph
    const rank = this.computeRank(name);
    this.ranks.set(name, rank);
    return rank;
  }

  private computeRank(name: string): number | null {
    const declared = this.declaredDims(name);
    if (declared) return declared.length;
    const node = this.producedBy.get(name);
    if (!node) return null;
    const input = (i: number) => node.inputs[i] ?? '';
    switch (node.opType) {
      case 'Flatten':
        return 2;
      case 'Reshape':
        return this.staticLength(input(1));
      case 'Gemm':
        return 2;
      case 'Squeeze': {
        const axes = intsAttribute(node, 'axes') ?? this.constantValues(input(1));
        const r = this.rank(input(0));
        return axes && r !== null ? r - axes.length : null;
      }
      case 'Unsqueeze': {
        const axes = intsAttribute(node, 'axes') ?? this.constantValues(input(1));
        const r = this.rank(input(0));
        return axes && r !== null ? r + axes.length : null;
      }
      case 'ReduceMean':
      case 'ReduceMax':
      case 'ReduceSum':
      case 'QLinearReduceMean': {
        const r = this.rank(input(0));
        if (r === null) return null;
        if ((intAttribute(node, 'keepdims') ?? 1) !== 0) return r;
        const axes = intsAttribute(node, 'axes') ?? this.constantValues(input(1));
        return axes ? r - axes.length : null;
      }
      case 'Gather': {
        const data = this.rank(input(0));
        const indices = this.rank(input(1));
        return data !== null && indices !== null ? data - 1 + indices : null;
      }
      case 'Shape':
        return 1;
      case 'MatMul': {
        const a = this.rank(input(0));
        const b = this.rank(input(1));
        // Rank-1 operands are promoted then squeezed; only the common case is certain.
        return a !== null && b !== null && a >= 2 && b >= 2 ? Math.max(a, b) : null;
      }
      default:
        if (RANK_PRESERVING.has(node.opType)) return this.rank(input(0));
        if (BROADCASTING.has(node.opType)) {
          // QLinearAdd/QLinearMul take (A, A_scale, A_zp, B, ...): the operands are inputs 0 and 3.
          const operands = node.opType.startsWith('QLinear') ? [input(0), input(3)] : node.inputs;
          const ranks = operands.map((x) => this.rank(x));
          return ranks.every((r) => r !== null) ? Math.max(...(ranks as number[])) : null;
        }
        return null;
    }
  }

  /** The values of a small constant tensor, or null. */
  constantValues(name: string): number[] | null {
    const t = this.constants.get(name);
    return t ? tensorValues(t) : null;
  }

  /**
   * How many elements a 1-D tensor has, when static: a Reshape's target shape
   * is often assembled at run time from Shape → Gather → Unsqueeze → Concat.
   */
  staticLength(name: string): number | null {
    const t = this.constants.get(name);
    if (t) return t.dims.reduce((a, b) => a * b, 1);
    const node = this.producedBy.get(name);
    if (!node) {
      const dims = this.declaredDims(name);
      return dims?.length === 1 && typeof dims[0] === 'number' ? dims[0] : null;
    }
    switch (node.opType) {
      case 'Concat': {
        const lengths = node.inputs.map((x) => this.staticLength(x));
        return lengths.every((l) => l !== null) ? (lengths as number[]).reduce((a, b) => a + b, 0) : null;
      }
      case 'Unsqueeze':
        // Unsqueezing a scalar gives one element.
        return this.rank(node.inputs[0] ?? '') === 0 ? 1 : null;
      case 'Shape': {
        const r = this.rank(node.inputs[0] ?? '');
        if (r === null) return null;
        const start = intAttribute(node, 'start');
        const end = intAttribute(node, 'end');
        if (start === undefined && end === undefined) return r;
        const clamp = (v: number) => Math.min(r, Math.max(0, v < 0 ? v + r : v));
        return Math.max(0, clamp(end ?? r) - clamp(start ?? 0));
      }
      case 'Cast':
      case 'Identity':
        return this.staticLength(node.inputs[0] ?? '');
      default:
        return null;
    }
  }
}
