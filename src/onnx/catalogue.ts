// The built-in catalogue of pretrained backbones: ImageNet classifiers of the
// ONNX Model Zoo, with what is needed to download, verify and feed them.
import { ExpectedFailure } from '../failure.js';
import { didYouMean } from './names.js';

/** A name that is not in the catalogue. */
export class CatalogueError extends ExpectedFailure {
  override name = 'CatalogueError';
  readonly reason = 'model';
}

const ZOO_BASE = 'https://github.com/onnx/models/raw/main/validated/vision/classification/';

export interface ImagePreprocessing {
  layout: 'NCHW' | 'NHWC';
  channelOrder: 'RGB';
  /** The shorter image side is resized to this, keeping the aspect ratio... */
  resizeShorterSide: number;
  /** ...then a centred square of this side is cropped: the model's input size. */
  cropSize: number;
  /**
   * Pixel values are first brought to this range (0..1: divided by 255;
   * 0..255: left as read), then each channel becomes (value − mean) / std.
   */
  pixelRange: '0..1' | '0..255';
  mean: [number, number, number];
  std: [number, number, number];
}

export interface CatalogueEntry {
  name: string;
  description: string;
  url: string;
  sha256: string;
  sizeBytes: number;
  licence: string;
  /** The ONNX opset the file imports. */
  opset: number;
  /** int8 weights and activations (QLinear operators): smaller and faster on CPU. */
  quantized: boolean;
  /** null when the zoo does not state it (then read the model's input and check its card). */
  preprocessing: ImagePreprocessing | null;
  /** Anything else a user of this entry must know. */
  note?: string;
}

/** The normalisation torchvision and the zoo's MXNet models were trained with. */
const IMAGENET: ImagePreprocessing = {
  layout: 'NCHW',
  channelOrder: 'RGB',
  resizeShorterSide: 256,
  cropSize: 224,
  pixelRange: '0..1',
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/**
 * EfficientNet-Lite (TensorFlow, converted): channels-last, and values in
 * [-1, 1] from (v − 127) / 128 on 0..255 pixels; resized by 1/0.875 (224 → 256)
 * then centre-cropped, per the zoo's preprocessing code.
 */
const EFFICIENTNET_LITE: ImagePreprocessing = {
  layout: 'NHWC',
  channelOrder: 'RGB',
  resizeShorterSide: 256,
  cropSize: 224,
  pixelRange: '0..255',
  mean: [127, 127, 127],
  std: [128, 128, 128],
};

const entry = (e: Omit<CatalogueEntry, 'url'> & { path: string }): CatalogueEntry => {
  const { path, ...rest } = e;
  return { ...rest, url: ZOO_BASE + path };
};

export const CATALOGUE: readonly CatalogueEntry[] = [
  entry({
    name: 'mobilenetv2-12-int8',
    description: 'MobileNetV2 1.0, int8-quantized: small and fast on CPU; 1280 features',
    path: 'mobilenet/model/mobilenetv2-12-int8.onnx',
    sha256: 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f',
    sizeBytes: 3655033,
    licence: 'Apache-2.0',
    opset: 12,
    quantized: true,
    preprocessing: IMAGENET,
  }),
  entry({
    name: 'mobilenetv2-12',
    description: 'MobileNetV2 1.0, float32; 1280 features',
    path: 'mobilenet/model/mobilenetv2-12.onnx',
    sha256: 'c0c3f76d93fa3fd6580652a45618618a220fced18babf65774ed169de0432ad5',
    sizeBytes: 13964571,
    licence: 'Apache-2.0',
    opset: 12,
    quantized: false,
    preprocessing: IMAGENET,
  }),
  entry({
    name: 'resnet50-v1-12',
    description: 'ResNet-50 v1, float32; 2048 features',
    path: 'resnet/model/resnet50-v1-12.onnx',
    sha256: '3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526',
    sizeBytes: 102576593,
    licence: 'Apache-2.0',
    opset: 12,
    quantized: false,
    preprocessing: IMAGENET,
  }),
  entry({
    name: 'resnet50-v1-12-int8',
    description: 'ResNet-50 v1, int8-quantized; 2048 features',
    path: 'resnet/model/resnet50-v1-12-int8.onnx',
    sha256: 'c234f30975989788b4405f25253275aae247ab6dbdd34aaa69ab0a59ff76f6d0',
    sizeBytes: 25816052,
    licence: 'Apache-2.0',
    opset: 12,
    quantized: true,
    preprocessing: IMAGENET,
  }),
  entry({
    name: 'resnet50-v2-7',
    description: 'ResNet-50 v2 (pre-activation), float32; 2048 features',
    path: 'resnet/model/resnet50-v2-7.onnx',
    sha256: '79102261eb6e5fd7af5d27f41316293e388c5cb691e5d25bfb035c4f64fefe31',
    sizeBytes: 102442452,
    licence: 'Apache-2.0',
    opset: 7,
    quantized: false,
    preprocessing: IMAGENET,
  }),
  entry({
    name: 'resnet18-v1-7',
    description: 'ResNet-18 v1, float32; 512 features',
    path: 'resnet/model/resnet18-v1-7.onnx',
    sha256: '4e8f8653e7a2222b3904cc3fe8e304cd8b339ce1d05fd24688162f86fb6df52c',
    sizeBytes: 46820737,
    licence: 'Apache-2.0',
    opset: 7,
    quantized: false,
    preprocessing: IMAGENET,
  }),
  entry({
    name: 'efficientnet-lite4-11',
    description: 'EfficientNet-Lite4, float32, channels-last input; 1280 features',
    path: 'efficientnet-lite4/model/efficientnet-lite4-11.onnx',
    sha256: 'd111689907c06eea7c82e4833ddef758da6453b9d4cf60b7e99ca05c7cbd9c12',
    sizeBytes: 51946641,
    licence: 'MIT',
    opset: 11,
    quantized: false,
    preprocessing: EFFICIENTNET_LITE,
    note: 'Its input is NHWC [1, 224, 224, 3]: the batch size of 1 is fixed in the file, so images go through one at a time.',
  }),
];

export function findCatalogueEntry(name: string): CatalogueEntry {
  const found = CATALOGUE.find((e) => e.name === name) ?? CATALOGUE.find((e) => e.name.toLowerCase() === name.toLowerCase());
  if (found) return found;
  const names = CATALOGUE.map((e) => e.name);
  throw new CatalogueError(
    `"${name}" is not in the model catalogue.${didYouMean(name, names)} Available: ${names.join(', ')}; ` +
      'or give the path of an .onnx file.',
  );
}
