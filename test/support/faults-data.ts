// Bad and unusual inputs for the fault suite, made at test time from the
// shared fixtures (never stored in the repository): images in every colour
// model and bit depth, broken files, a decompression bomb, odd file names,
// and tiny ONNX models that are not what a backbone should be.
import fs from 'node:fs/promises';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { buildModel } from '../../src/onnx/builder.js';
import { fixture } from './fixtures.js';

/** What the dataset stage must do with a file. */
export type Expect = 'use' | 'skip' | 'report';

export interface DataCase {
  name: string;
  /** Path relative to the data folder; a Buffer for names that are not UTF-8. */
  file: string | Buffer;
  expect: Expect;
  /** For 'use': the size the manifest must give after EXIF orientation. */
  size?: { width: number; height: number };
  /** For 'skip' and 'report': what the reason must say. */
  reason?: RegExp;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid-looking PNG of a few hundred bytes that declares `side` × `side` RGB pixels. */
export function pngBomb(side = 100_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  // Rows of zeros compress to almost nothing: the first rows of the image.
  const idat = deflateSync(Buffer.alloc(4 * (3 * side + 1)), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * Writes every per-file case into `data` (a Kaggle-layout folder whose
 * train/ and test1/ already hold good photos) and returns the cases.
 */
export async function writeDataCases(data: string): Promise<DataCase[]> {
  const train = (name: string) => path.join('train', name);
  const chelsea = fixture('images', 'chelsea.png');
  const coffee = fixture('images', 'coffee.png');
  const dog = fixture('images', 'dog.jpg');
  const photo = (n: number, c = 'cat') => fixture('datasets', 'catsdogs-2k', 'train', `${c}.${n}.jpg`);
  const cases: DataCase[] = [];
  const add = async (c: DataCase, bytes: Uint8Array | string | (() => Promise<void>)) => {
    const full = typeof c.file === 'string' ? path.join(data, c.file) : Buffer.concat([Buffer.from(`${data}/`), c.file]);
    if (typeof bytes === 'function') await bytes();
    else await fs.writeFile(full, bytes);
    cases.push(c);
  };

  await add({ name: 'zero-byte image', file: train('cat.zero.jpg'), expect: 'skip', reason: /empty/i }, new Uint8Array());
  await add({ name: 'truncated JPEG', file: train('cat.truncated.jpg'), expect: 'skip', reason: /trunc|premature|corrupt/i }, await fs.readFile(fixture('images', 'truncated.jpg')));
  await add({ name: 'text file named .jpg', file: train('dog.text.jpg'), expect: 'skip', reason: /./ }, 'this is not a picture, it is a text file\n');
  await add({ name: 'decompression bomb (PNG declaring 10^10 pixels)', file: train('dog.bomb.png'), expect: 'skip', reason: /pixel/i }, pngBomb());
  await add(
    { name: 'grayscale JPEG', file: train('cat.gray.jpg'), expect: 'use', size: { width: 451, height: 300 } },
    await sharp(chelsea).toColourspace('b-w').jpeg({ quality: 90 }).toBuffer(),
  );
  await add(
    { name: 'CMYK JPEG', file: train('dog.cmyk.jpg'), expect: 'use', size: { width: 768, height: 576 } },
    await sharp(dog).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer(),
  );
  await add(
    { name: 'PNG with alpha', file: train('cat.alpha.png'), expect: 'use', size: { width: 600, height: 400 } },
    await sharp(coffee).ensureAlpha(0.5).png().toBuffer(),
  );
  await add(
    { name: '16-bit PNG', file: train('cat.deep.png'), expect: 'use', size: { width: 451, height: 300 } },
    await sharp(chelsea).toColourspace('rgb16').png().toBuffer(),
  );
  await add(
    // Stored 768 × 576, EXIF orientation 6 (rotate 90°): used as 576 × 768.
    { name: 'EXIF-rotated photo (orientation 6)', file: train('dog.exif6.jpg'), expect: 'use', size: { width: 576, height: 768 } },
    await sharp(dog).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer(),
  );
  const spaced = (await sharp(photo(100)).metadata()) as { width: number; height: number };
  await add({ name: 'spaces in the file name', file: train('cat with spaces.jpg'), expect: 'use', size: { width: spaced.width, height: spaced.height } }, await fs.readFile(photo(100)));
  await add(
    { name: 'file name not valid UTF-8', file: Buffer.from([...Buffer.from('train/cat.'), 0xff, 0xfe, 0x41, ...Buffer.from('.jpg')]), expect: 'skip', reason: /UTF-8/ },
    await fs.readFile(photo(101)),
  );
  await add({ name: 'symbolic link loop (a link to its own folder)', file: train('loop'), expect: 'report', reason: /loop/i }, async () => {
    await fs.symlink('.', path.join(data, 'train', 'loop'));
  });
  await add({ name: 'symbolic link to itself', file: train('self.jpg'), expect: 'report', reason: /loop/i }, async () => {
    await fs.symlink('self.jpg', path.join(data, 'train', 'self.jpg'));
  });
  await add({ name: 'zero-byte test image', file: path.join('test1', '999.jpg'), expect: 'skip', reason: /empty/i }, new Uint8Array());
  return cases;
}

/** A well-formed ONNX model whose input is a [N, 10] vector, not an image. */
export function vectorModel(): Uint8Array {
  const weights = new Float32Array(10 * 3).map((_, i) => (i % 7) / 7 - 0.4);
  return buildModel({
    name: 'not-an-image-model',
    opset: 13,
    inputs: [{ name: 'x', type: 'float32', dims: ['N', 10] }],
    outputs: [{ name: 'y', type: 'float32', dims: ['N', 3] }],
    initializers: [{ name: 'W', type: 'float32', dims: [10, 3], data: weights }],
    nodes: [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }],
  });
}

/**
 * A broken backbone: an image model whose pooled "features" are the log of
 * each normalised channel mean, NaN for photos darker than the ImageNet mean
 * in a channel, followed by a dense classifier (so backbone.freeze finds its
 * head and cuts before it, keeping the NaN-producing features).
 */
export function nanFeaturesModel(): Uint8Array {
  return buildModel({
    name: 'nan-features',
    opset: 13,
    inputs: [{ name: 'input', type: 'float32', dims: ['N', 3, 224, 224] }],
    outputs: [{ name: 'output', type: 'float32', dims: ['N', 2] }],
    initializers: [{ name: 'W', type: 'float32', dims: [3, 2], data: Float32Array.of(1, -1, 0.5, 0.5, -1, 1) }],
    nodes: [
      { op: 'GlobalAveragePool', inputs: ['input'], outputs: ['pooled'] },
      { op: 'Flatten', inputs: ['pooled'], outputs: ['flat'] },
      { op: 'Log', inputs: ['flat'], outputs: ['features'] },
      { op: 'MatMul', inputs: ['features', 'W'], outputs: ['output'] },
    ],
  });
}
