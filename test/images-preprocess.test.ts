// Preprocessing: geometry as torchvision computes it, Pillow's bilinear
// resize, normalisation, colour models, orientation, augmentation, errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { Ajv } from 'ajv';
import {
  loadImageTensor,
  loadImageTensorInto,
  makeThumbnail,
  resolveTransform,
  transformSpecSchema,
  tensorLength,
  createRng,
  ImageLoadError,
  TransformSpecError,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type TransformSpec,
} from '../src/images/index.js';
import { centerCropPlacement, randomResizedCropBox, resizedSize, roundHalfToEven } from '../src/images/geometry.js';
import { resizeRegionLikePil } from '../src/images/pil-resample.js';

type Rgb = [number, number, number];

/** Float32 ToTensor + Normalize, as torch computes it. */
function normalized(value: number, channel: number, mean: number[] = IMAGENET_MEAN, std: number[] = IMAGENET_STD): number {
  return Math.fround(Math.fround(Math.fround(value / 255) - Math.fround(mean[channel]!)) / Math.fround(std[channel]!));
}

function solid(width: number, height: number, rgb: Rgb): sharp.Sharp {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
}

/** Packed RGB of width×height whose left `split` columns are `left`, the rest `right`. */
function twoColours(width: number, height: number, split: number, left: Rgb, right: Rgb): Buffer {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) pixels.set(x < split ? left : right, (y * width + x) * 3);
  }
  return pixels;
}

/** Value of pixel (x, y), channel c, of an NCHW tensor. */
function at(tensor: Float32Array, size: { width: number; height: number }, x: number, y: number, c: number): number {
  return tensor[c * size.width * size.height + y * size.width + x]!;
}

function assertPixel(tensor: Float32Array, size: { width: number; height: number }, x: number, y: number, rgb: Rgb): void {
  const actual = [0, 1, 2].map((c) => at(tensor, size, x, y, c));
  const expected = [0, 1, 2].map((c) => normalized(rgb[c]!, c));
  assert.deepEqual(actual, expected, `pixel (${x}, ${y})`);
}

const small = (crop: number, extra: Partial<Parameters<typeof resolveTransform>[0]> = {}): TransformSpec =>
  resolveTransform({ resize: crop + 8, centerCrop: crop, ...extra });

describe('resolveTransform', () => {
  it('defaults to torchvision evaluation preprocessing', () => {
    const spec = resolveTransform();
    assert.deepEqual(spec.resize, { shorterSide: 256 });
    assert.deepEqual(spec.centerCrop, { width: 224, height: 224 });
    assert.deepEqual(spec.mean, [0.485, 0.456, 0.406]);
    assert.deepEqual(spec.std, [0.229, 0.224, 0.225]);
    assert.equal(spec.layout, 'NCHW');
    assert.equal(spec.resampler, 'pil');
    assert.equal(spec.augment, null);
    assert.equal(tensorLength(spec), 3 * 224 * 224);
  });

  it('follows the model input size and layout', () => {
    const spec = resolveTransform({}, { layout: 'NHWC', height: 299, width: 299 });
    assert.deepEqual(spec.centerCrop, { width: 299, height: 299 });
    assert.deepEqual(spec.resize, { shorterSide: 341 });
    assert.equal(spec.layout, 'NHWC');
    // Dynamic dimensions leave the defaults.
    assert.deepEqual(resolveTransform({}, { layout: 'NCHW', height: -1, width: null }).centerCrop, { width: 224, height: 224 });
  });

  it('refuses settings that do not fit the model', () => {
    assert.throws(() => resolveTransform({ centerCrop: 200 }, { height: 224, width: 224 }), /produces 200x200.*expects 224x224/);
    assert.throws(() => resolveTransform({ layout: 'NHWC' }, { layout: 'NCHW' }), TransformSpecError);
    assert.throws(() => resolveTransform({ centerCrop: null }), /size depends on each image/);
    assert.throws(() => resolveTransform({ std: [0.2, 0, 0.2] }), /std values must be greater than 0/);
    assert.throws(() => resolveTransform({ resize: { shorterSide: 256, maxLongerSide: 200 } }), /maxLongerSide/);
    assert.throws(() => resolveTransform({ augment: { horizontalFlip: 2 } }), /probability/);
  });

  it('resolves augmentation defaults as torchvision', () => {
    const spec = resolveTransform({ augment: {} });
    assert.deepEqual(spec.augment, { horizontalFlip: 0.5, randomResizedCrop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] } });
    assert.deepEqual(resolveTransform({ augment: { randomResizedCrop: false, horizontalFlip: 1 } }).augment, {
      horizontalFlip: 1,
      randomResizedCrop: null,
    });
  });

  it('has a JSON Schema that strict ajv compiles, applying defaults', () => {
    const ajv = new Ajv({ strict: true, useDefaults: true, allErrors: true });
    const validate = ajv.compile(transformSpecSchema);
    const input: Record<string, unknown> = { resize: 256, centerCrop: { width: 224, height: 224 }, augment: {} };
    assert.equal(validate(input), true, JSON.stringify(validate.errors));
    // mean and std have no schema default (the backbone's own statistics may apply); resolveTransform falls back to ImageNet's.
    assert.equal(input.mean, undefined);
    assert.deepEqual(resolveTransform({ mean: input.mean as undefined }).mean, IMAGENET_MEAN);
    assert.deepEqual(input.augment, { horizontalFlip: 0.5, randomResizedCrop: true, scale: [0.08, 1], ratio: [0.75, 4 / 3] });
    assert.equal(validate({ resize: { shorterSide: 256, maxLongerSide: 400 }, centerCrop: null, layout: 'NHWC' }), true);
    assert.equal(validate({ resize: 0 }), false);
    assert.equal(validate({ layout: 'CHW' }), false);
    assert.equal(validate({ mean: [0.5, 0.5] }), false);
    assert.equal(validate({ crop: 224 }), false);
  });
});

describe('geometry', () => {
  it('resizes the shorter side, truncating the longer one', () => {
    assert.deepEqual(resizedSize(500, 375, { shorterSide: 256 }), { width: 341, height: 256 });
    assert.deepEqual(resizedSize(375, 500, { shorterSide: 256 }), { width: 256, height: 341 });
    assert.deepEqual(resizedSize(300, 280, { shorterSide: 256 }), { width: 274, height: 256 });
    assert.deepEqual(resizedSize(1000, 100, { shorterSide: 256, maxLongerSide: 1000 }), { width: 1000, height: 100 });
    assert.deepEqual(resizedSize(640, 480, { width: 10, height: 20 }), { width: 10, height: 20 });
  });

  it("rounds centre-crop offsets half to even, as Python's round()", () => {
    assert.equal(roundHalfToEven(58.5), 58);
    assert.equal(roundHalfToEven(59.5), 60);
    assert.equal(roundHalfToEven(2.4), 2);
    assert.equal(centerCropPlacement(341, 256, { width: 224, height: 224 }).left, 58);
    assert.equal(centerCropPlacement(343, 256, { width: 224, height: 224 }).left, 60);
    assert.deepEqual(centerCropPlacement(100, 50, { width: 105, height: 50 }), {
      left: 0, top: 0, width: 100, height: 50, padLeft: 2, padTop: 0,
    });
  });

  it('draws random resized crops inside the image, within the scale range', () => {
    const rng = createRng(7);
    for (let i = 0; i < 200; i++) {
      const box = randomResizedCropBox(400, 300, [0.08, 1], [3 / 4, 4 / 3], rng);
      assert.ok(box.left >= 0 && box.top >= 0 && box.left + box.width <= 400 && box.top + box.height <= 300);
      const area = (box.width * box.height) / (400 * 300);
      assert.ok(area > 0.07 && area <= 1.0, `area fraction ${area}`);
    }
    // Impossible ratios fall back to a centre crop clamped to the ratio range.
    assert.deepEqual(randomResizedCropBox(1000, 100, [0.99, 1], [1, 1], createRng(1)), { left: 450, top: 0, width: 100, height: 100 });
  });
});

describe("Pillow's bilinear resize", () => {
  // Expected rows from Pillow 9.4: Image.fromarray(ramp).resize((w, 1), Image.BILINEAR)
  const ramp = Buffer.alloc(8 * 3);
  for (let x = 0; x < 8; x++) ramp.fill(x * 30, x * 3, x * 3 + 3);
  const image = { pixels: ramp, width: 8, height: 1 };
  const row = (width: number) => {
    const out = resizeRegionLikePil(image, { width, height: 1 }, { left: 0, top: 0, width, height: 1 });
    return Array.from(out.filter((_, i) => i % 3 === 0));
  };

  it('matches PIL when enlarging and shrinking', () => {
    assert.deepEqual(row(16), [0, 8, 23, 38, 53, 68, 83, 98, 113, 128, 143, 158, 173, 188, 203, 210]);
    assert.deepEqual(row(9), [0, 25, 52, 78, 105, 132, 158, 185, 210]);
    assert.deepEqual(row(7), [5, 38, 72, 105, 138, 172, 205]);
    assert.deepEqual(row(4), [21, 75, 135, 189]);
  });

  it('computes a region equal to the same part of the whole result', () => {
    const pixels = Buffer.alloc(37 * 23 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7919) % 251;
    const source = { pixels, width: 37, height: 23 };
    const out = { width: 17, height: 29 };
    const whole = resizeRegionLikePil(source, out, { left: 0, top: 0, ...out });
    const part = resizeRegionLikePil(source, out, { left: 3, top: 5, width: 9, height: 11 });
    for (let y = 0; y < 11; y++) {
      const from = ((y + 5) * 17 + 3) * 3;
      assert.deepEqual(part.subarray(y * 27, y * 27 + 27), whole.subarray(from, from + 27));
    }
  });
});

describe('loadImageTensor', () => {
  it('normalises a solid colour to exactly ((c / 255) - mean) / std, in both layouts', async () => {
    const png = await solid(40, 30, [200, 100, 7]).png().toBuffer();
    for (const layout of ['NCHW', 'NHWC'] as const) {
      const spec = small(16, { layout });
      const tensor = await loadImageTensor(png, spec);
      assert.equal(tensor.length, 3 * 16 * 16);
      for (let i = 0; i < tensor.length; i++) {
        const channel = layout === 'NCHW' ? Math.floor(i / 256) : i % 3;
        assert.equal(tensor[i], normalized([200, 100, 7][channel]!, channel));
      }
    }
  });

  it('keeps the two halves of a left/right image after resize and crop', async () => {
    const red: Rgb = [255, 0, 0];
    const blue: Rgb = [0, 0, 255];
    const png = await sharp(twoColours(400, 300, 200, red, blue), { raw: { width: 400, height: 300, channels: 3 } }).png().toBuffer();
    const spec = resolveTransform({ resize: 64, centerCrop: 56 });
    const size = { width: 56, height: 56 };
    const tensor = await loadImageTensor(png, spec);
    // 400x300 → 85x64, crop from x = 14: the edge is at 42.5 - 14 = 28.5.
    for (const y of [0, 30, 55]) {
      for (let x = 0; x < 27; x++) assertPixel(tensor, size, x, y, red);
      for (let x = 30; x < 56; x++) assertPixel(tensor, size, x, y, blue);
    }
  });

  it('mirrors with horizontalFlip, only when given a random source', async () => {
    const png = await sharp(twoColours(64, 48, 20, [255, 255, 0], [0, 128, 0]), { raw: { width: 64, height: 48, channels: 3 } })
      .png()
      .toBuffer();
    const spec = resolveTransform({ resize: 32, centerCrop: 32, augment: { horizontalFlip: 1, randomResizedCrop: false } });
    const plain = await loadImageTensor(png, spec);
    const flipped = await loadImageTensor(png, spec, { rng: createRng(1) });
    assert.notDeepEqual(flipped, plain);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) assert.equal(flipped[c * 1024 + y * 32 + x], plain[c * 1024 + y * 32 + (31 - x)]);
      }
    }
    const never = resolveTransform({ resize: 32, centerCrop: 32, augment: { horizontalFlip: 0, randomResizedCrop: false } });
    assert.deepEqual(await loadImageTensor(png, never, { rng: createRng(1) }), plain);
  });

  it('draws random resized crops reproducibly from the seed', async () => {
    const pixels = Buffer.alloc(120 * 90 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 31) % 256;
    const png = await sharp(pixels, { raw: { width: 120, height: 90, channels: 3 } }).png().toBuffer();
    const spec = resolveTransform({ centerCrop: 32, augment: {} });
    const a = await loadImageTensor(png, spec, { rng: createRng(5) });
    const b = await loadImageTensor(png, spec, { rng: createRng(5) });
    const c = await loadImageTensor(png, spec, { rng: createRng(6) });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.every(Number.isFinite));
    for (const resampler of ['pil', 'libvips'] as const) {
      const viaResampler = await loadImageTensor(png, { ...spec, resampler }, { rng: createRng(5) });
      assert.equal(viaResampler.length, 3 * 32 * 32);
    }
  });

  it('applies EXIF orientation 6 (rotate 90° clockwise)', async () => {
    // Stored 40x20: left half red, right half blue. Displayed: 20x40, red on top.
    const jpeg = await sharp(twoColours(40, 20, 20, [255, 0, 0], [0, 0, 255]), { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    assert.equal((await sharp(jpeg).metadata()).orientation, 6);
    const size = { width: 20, height: 40 };
    for (const resampler of ['pil', 'libvips'] as const) {
      const tensor = await loadImageTensor(jpeg, resolveTransform({ resize: { width: 20, height: 40 }, centerCrop: size, resampler }));
      const red = (x: number, y: number) => at(tensor, size, x, y, 0) > 1.5 && at(tensor, size, x, y, 2) < -1.2;
      const blue = (x: number, y: number) => at(tensor, size, x, y, 2) > 2 && at(tensor, size, x, y, 0) < -1.5;
      for (const x of [0, 10, 19]) {
        assert.ok(red(x, 2) && red(x, 15), `${resampler}: top is red at x=${x}`);
        assert.ok(blue(x, 25) && blue(x, 38), `${resampler}: bottom is blue at x=${x}`);
      }
    }
  });

  it('turns grayscale, palette, alpha and 16-bit images into RGB as PIL does', async () => {
    const spec = small(8);
    const expectSolid = async (input: Buffer, rgb: Rgb, what: string) => {
      const tensor = await loadImageTensor(input, spec);
      for (let i = 0; i < tensor.length; i++) {
        const c = Math.floor(i / 64);
        assert.equal(tensor[i], normalized(rgb[c]!, c), `${what}: element ${i}`);
      }
    };
    await expectSolid(await solid(20, 20, [90, 90, 90]).toColourspace('b-w').png().toBuffer(), [90, 90, 90], 'grayscale PNG');
    await expectSolid(
      await solid(20, 20, [10, 200, 30]).png({ palette: true, colours: 4, dither: 0 }).toBuffer(),
      [10, 200, 30],
      'palette PNG',
    );
    // Fully transparent white stays white: convert('RGB') drops alpha, it does not composite.
    const rgba = Buffer.alloc(20 * 20 * 4);
    for (let i = 0; i < 400; i++) rgba.set([255, 255, 255, i % 3 === 0 ? 255 : 0], i * 4);
    await expectSolid(await sharp(rgba, { raw: { width: 20, height: 20, channels: 4 } }).png().toBuffer(), [255, 255, 255], 'RGBA PNG');
    const greyAlpha = Buffer.alloc(20 * 20 * 2);
    for (let i = 0; i < 400; i++) greyAlpha.set([77, i % 2 ? 0 : 255], i * 2);
    await expectSolid(await sharp(greyAlpha, { raw: { width: 20, height: 20, channels: 2 } }).png().toBuffer(), [77, 77, 77], 'grey+alpha PNG');
    // 16-bit: the high byte, as PIL reads 16-bit RGB.
    const rgb16 = new Uint16Array(20 * 20 * 3);
    for (let i = 0; i < rgb16.length; i++) rgb16[i] = [0x80ff, 0x1234, 0xfffe][i % 3]!;
    const png16 = await sharp(rgb16, { raw: { width: 20, height: 20, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    assert.equal((await sharp(png16).metadata()).depth, 'ushort');
    await expectSolid(png16, [0x80, 0x12, 0xff], '16-bit RGB PNG');
    const grey16 = await sharp(new Uint16Array(400).fill(0x6543), { raw: { width: 20, height: 20, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    await expectSolid(grey16, [0x65, 0x65, 0x65], '16-bit grayscale PNG');
  });

  it('converts CMYK JPEGs to RGB', async () => {
    const cmyk = await solid(24, 24, [220, 30, 30]).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
    const tensor = await loadImageTensor(cmyk, small(8));
    const mean = (c: number) => tensor.subarray(c * 64, (c + 1) * 64).reduce((a, b) => a + b, 0) / 64;
    // Back through an ICC profile: red stays clearly red.
    assert.ok(mean(0) > normalized(180, 0), `red channel ${mean(0)}`);
    assert.ok(mean(1) < normalized(90, 1) && mean(2) < normalized(90, 2), `green ${mean(1)}, blue ${mean(2)}`);
  });

  it('pads with black when the image is smaller than the crop', async () => {
    const png = await solid(6, 4, [255, 255, 255]).png().toBuffer();
    const size = { width: 10, height: 8 };
    const tensor = await loadImageTensor(png, resolveTransform({ resize: null, centerCrop: size }));
    assertPixel(tensor, size, 0, 0, [0, 0, 0]);
    assertPixel(tensor, size, 2, 2, [255, 255, 255]);
    assertPixel(tensor, size, 7, 5, [255, 255, 255]);
    assertPixel(tensor, size, 8, 6, [0, 0, 0]);
  });

  it('fills a batch buffer in place at an offset', async () => {
    const spec = small(8);
    const length = tensorLength(spec);
    const a = await solid(12, 12, [1, 2, 3]).png().toBuffer();
    const b = await solid(12, 12, [250, 128, 0]).png().toBuffer();
    const batch = new Float32Array(2 * length).fill(Number.NaN);
    await loadImageTensorInto(b, spec, batch, length);
    await loadImageTensorInto(a, spec, batch, 0);
    assert.deepEqual(batch.subarray(0, length), await loadImageTensor(a, spec));
    assert.deepEqual(batch.subarray(length), await loadImageTensor(b, spec));
    await assert.rejects(loadImageTensorInto(a, spec, batch, length + 1), RangeError);
  });

  it('stays within a few grey levels of PIL with the libvips resampler', async () => {
    const pixels = Buffer.alloc(300 * 200 * 3);
    for (let y = 0; y < 200; y++) for (let x = 0; x < 300; x++) pixels.set([x % 256, (y * 3) % 256, (x + y) % 256], (y * 300 + x) * 3);
    const png = await sharp(pixels, { raw: { width: 300, height: 200, channels: 3 } }).png().toBuffer();
    const pil = await loadImageTensor(png, resolveTransform({ resize: 72, centerCrop: 64 }));
    const vips = await loadImageTensor(png, resolveTransform({ resize: 72, centerCrop: 64, resampler: 'libvips' }));
    let worst = 0;
    for (let i = 0; i < pil.length; i++) worst = Math.max(worst, Math.abs(pil[i]! - vips[i]!) * 0.229 * 255);
    assert.ok(worst <= 4, `max difference ${worst} grey levels`);
  });

  it('reports unusable input as ImageLoadError with a category', async () => {
    const spec = small(8);
    const expectKind = async (input: Buffer, kind: string) => {
      await assert.rejects(loadImageTensor(input, spec), (error: unknown) => {
        assert.ok(error instanceof ImageLoadError);
        assert.equal(error.kind, kind);
        return true;
      });
    };
    await expectKind(Buffer.alloc(0), 'empty-file');
    await expectKind(Buffer.from('hello, not an image\n'), 'not-an-image');
    const jpeg = await solid(64, 64, [1, 2, 3]).jpeg().toBuffer();
    await expectKind(jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'corrupt');
    const tiny = resolveTransform({ resize: 4, centerCrop: 4, maxPixels: 1000 });
    await assert.rejects(loadImageTensor(await solid(64, 64, [1, 2, 3]).png().toBuffer(), tiny), /too many pixels/);
  });
});

describe('makeThumbnail', () => {
  it('makes an upright, small JPEG or WebP', async () => {
    const jpeg = await solid(80, 40, [10, 20, 30]).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const thumb = await makeThumbnail(jpeg, 20);
    const meta = await sharp(thumb).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.deepEqual([meta.width, meta.height], [10, 20]);
    const webp = await makeThumbnail(await solid(30, 30, [1, 1, 1]).png().toBuffer(), 64, { format: 'webp' });
    const webpMeta = await sharp(webp).metadata();
    assert.deepEqual([webpMeta.format, webpMeta.width], ['webp', 30]);
  });
});
