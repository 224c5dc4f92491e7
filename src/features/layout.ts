// Resolves what every batch needs (input and output names, one image's shape,
// a fixed batch size) from the caller's options and what the session reports,
// with errors that say which option to pass.
import { fixedImageShape } from './model-info.js';
import type { ModelInfo, TensorInfo } from './worker-protocol.js';

/** The options the layout depends on (a subset of ExtractOptions). */
export interface LayoutOptions {
  inputName?: string;
  outputName?: string;
  inputShape?: readonly number[] | number;
}

/** Options resolved against the model: what every batch needs to know. */
export interface Layout {
  inputName: string;
  outputName: string;
  imageShape: number[];
  /** The model's batch dimension when it is a fixed number. */
  fixedBatch: number | undefined;
}

/** Checks the options against what the session reports, once it has loaded. */
export function resolveLayout(opts: LayoutOptions, info: ModelInfo, label: string): Layout {
  const names = (list: { name: string }[]) => list.map((v) => `"${v.name}"`).join(', ');
  let input: TensorInfo | undefined = info.inputs[0];
  if (opts.inputName !== undefined) {
    input = info.inputs.find((v) => v.name === opts.inputName);
    if (!input) throw new Error(`${label} has no input "${opts.inputName}"; its inputs are ${names(info.inputs)}`);
  } else if (info.inputs.length !== 1) {
    throw new Error(`${label} has ${info.inputs.length} inputs (${names(info.inputs)}): pass inputName`);
  }
  if (!input) throw new Error(`${label} has no inputs`);
  if (input.type !== 'float32') {
    throw new Error(`${label}: input "${input.name}" is ${input.type ?? 'not a tensor'}; the extractor feeds float32`);
  }
  const output = opts.outputName === undefined ? info.outputs[0] : info.outputs.find((v) => v.name === opts.outputName);
  if (!output) throw new Error(`${label} has no output "${opts.outputName}"; its outputs are ${names(info.outputs)}`);

  const modelShape = fixedImageShape(input);
  let imageShape: number[];
  if (Array.isArray(opts.inputShape)) {
    imageShape = [...opts.inputShape];
    const rest = input.shape.slice(1);
    const clash =
      rest.length !== imageShape.length || rest.some((d, i) => typeof d === 'number' && d > 0 && d !== imageShape[i]);
    if (input.shape.length > 0 && clash) {
      throw new Error(
        `inputShape [${imageShape}] does not fit ${label}'s input "${input.name}" of shape [${input.shape}]`,
      );
    }
  } else {
    if (!modelShape) {
      throw new Error(
        `${label}'s input "${input.name}" has shape [${input.shape}] with dynamic image dimensions: pass inputShape as [C, H, W]`,
      );
    }
    const count = modelShape.reduce((a, b) => a * b, 1);
    if (typeof opts.inputShape === 'number' && opts.inputShape !== count) {
      throw new Error(`inputShape says ${opts.inputShape} values per image but ${label} takes [${modelShape}] = ${count}`);
    }
    imageShape = modelShape;
  }
  const batchDim = input.shape[0];
  return {
    inputName: input.name,
    outputName: output.name,
    imageShape,
    fixedBatch: typeof batchDim === 'number' && batchDim > 0 ? batchDim : undefined,
  };
}
