// Stand-in ImageNet preprocessing (shorter side 256, centre crop 224, normalise),
// used only until src/images/preprocess.ts exists.
import sharp from 'sharp';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const SIZE = 224;

export async function loadImageNetTensor(file: string, target: Float32Array, offset: number): Promise<void> {
  const { data, info } = await sharp(file)
    .removeAlpha()
    .resize(256, 256, { fit: 'outside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const left = Math.floor((info.width - SIZE) / 2);
  const top = Math.floor((info.height - SIZE) / 2);
  const plane = SIZE * SIZE;
  for (let c = 0; c < 3; c++) {
    const scale = 1 / (255 * STD[c]!);
    const shift = MEAN[c]! / STD[c]!;
    const base = offset + c * plane;
    for (let y = 0; y < SIZE; y++) {
      let src = ((top + y) * info.width + left) * 3 + c;
      const row = base + y * SIZE;
      for (let x = 0; x < SIZE; x++, src += 3) target[row + x] = data[src]! * scale - shift;
    }
  }
}
