// What a model expects and returns: its image input (layout, size, batch) and
// its outputs, read from the graph rather than assumed.
import { type Dim, type OnnxModel, OnnxModelError, defaultOpset } from './model.js';

export type ImageLayout = 'NCHW' | 'NHWC';

export interface ImageInput {
  name: string;
  layout: ImageLayout;
  channels: number;
  /** null when the model accepts any height (or width). */
  height: number | null;
  width: number | null;
  /** The fixed batch size, or null when any batch size is accepted. */
  batch: number | null;
  /** The batch dimension as the file writes it: a size, a symbolic name such as 'batch_size', or null. */
  batchDim: Dim;
  elemType: 'float32';
}

export interface ModelOutput {
  name: string;
  elemType: string | null;
  dims: readonly Dim[] | null;
}

export interface ModelDescription {
  input: ImageInput;
  outputs: ModelOutput[];
  /** Version of the default ONNX operator set. */
  opset: number;
}

export function formatDims(dims: readonly Dim[] | null): string {
  return dims === null ? '[unknown shape]' : `[${dims.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

const fixedSize = (d: Dim | undefined): number | null => (typeof d === 'number' && d > 0 ? d : null);

export function describeImageInput(model: OnnxModel): ImageInput {
  const { inputs } = model.graph;
  const where = model.source;
  if (inputs.length === 0) throw new OnnxModelError(`${where} has no input to feed an image to.`);
  if (inputs.length > 1) {
    throw new OnnxModelError(
      `${where} takes ${inputs.length} inputs (${inputs.map((i) => `"${i.name}"`).join(', ')}); ` +
        'tlpipe needs an image classifier with a single image input.',
    );
  }
  const input = inputs[0]!;
  const notImage = (why: string) =>
    new OnnxModelError(
      `${where} does not take an image: its input "${input.name}" ${why}. ` +
        'An image input is a float32 tensor [N, 3, H, W] (NCHW) or [N, H, W, 3] (NHWC); use an image classification model.',
    );
  if (input.elemType === null || input.dims === null) throw notImage('has no declared tensor shape');
  const shape = formatDims(input.dims);
  if (input.dims.length !== 4) throw notImage(`has shape ${shape} (rank ${input.dims.length}, not 4)`);
  // Axis 1 holding the 3 colour channels means channels-first; axis 3, channels-last.
  const layout: ImageLayout | undefined = input.dims[1] === 3 ? 'NCHW' : input.dims[3] === 3 ? 'NHWC' : undefined;
  if (!layout) throw notImage(`has shape ${shape}, with no axis of 3 colour channels at position 1 or 3`);
  if (input.elemType !== 'float32') throw notImage(`holds ${input.elemType} values, not float32`);
  const [hAxis, wAxis] = layout === 'NCHW' ? [2, 3] : [1, 2];
  return {
    name: input.name,
    layout,
    channels: 3,
    height: fixedSize(input.dims[hAxis]),
    width: fixedSize(input.dims[wAxis]),
    batch: fixedSize(input.dims[0]),
    batchDim: input.dims[0] ?? null,
    elemType: 'float32',
  };
}

export function describeOutputs(model: OnnxModel): ModelOutput[] {
  return model.graph.outputs.map((o) => ({ name: o.name, elemType: o.elemType, dims: o.dims }));
}

export function describeModel(model: OnnxModel): ModelDescription {
  return { input: describeImageInput(model), outputs: describeOutputs(model), opset: defaultOpset(model) };
}
