// Bad data is reported, not fatal: every kind of unusable file lands in
// `skipped` with its category; unusual but valid images are kept; datasets
// that cannot train a classifier fail with a message saying what to do.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { scanDataset, checkImageBytes, DatasetError, type DatasetScan } from '../src/images/index.js';
import { tempDir, removeDir } from './support/tmp.js';

const made: string[] = [];
after(async () => {
  await Promise.all(made.map(removeDir));
});

async function folderOf(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = await tempDir(files);
  made.push(dir);
  return dir;
}

let seed = 1;
/** Noise, so that JPEG entropy data is large enough to cut in half meaningfully. */
function noise(width: number, height: number, channels: 3 | 4 = 3): sharp.Sharp {
  const pixels = Buffer.alloc(width * height * channels);
  for (let i = 0; i < pixels.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    pixels[i] = seed >>> 24;
  }
  return sharp(pixels, { raw: { width, height, channels } });
}

const jpeg = (width = 16, height = 12) => noise(width, height).jpeg().toBuffer();

function crc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

/** A real 1×1 PNG whose header is patched to declare width × height (a decompression bomb's signature). */
async function pngDeclaring(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).png().toBuffer());
  // Signature (8) + IHDR length (4) + "IHDR" (4), then width and height.
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

const skippedKinds = (scan: DatasetScan) =>
  Object.fromEntries(scan.skipped.map((s) => [path.relative(scan.spec.layout === 'csv' ? '' : scan.spec.train, s.path), s.kind]));

describe('unusable files', () => {
  it('skips each kind of bad file with its reason and keeps unusual valid images', async () => {
    const full = await jpeg(64, 64);
    const png = await noise(32, 32).png().toBuffer();
    const root = await folderOf({
      // Valid, if unusual.
      'cats/grey.jpg': await noise(16, 16).toColourspace('b-w').jpeg().toBuffer(),
      'cats/cmyk.jpg': await noise(16, 16).toColourspace('cmyk').jpeg().toBuffer(),
      'cats/alpha.png': await noise(16, 16, 4).png().toBuffer(),
      'cats/deep.png': await sharp(new Uint16Array(16 * 16 * 3).fill(40000), { raw: { width: 16, height: 16, channels: 3 } })
        .toColourspace('rgb16')
        .png()
        .toBuffer(),
      'cats/rotated.jpg': await noise(40, 20).jpeg().withMetadata({ orientation: 6 }).toBuffer(),
      'cats/my cat 1.jpg': await jpeg(),
      'dogs/dog.jpg': await jpeg(),
      'dogs/dog two.png': png,
      // Unusable.
      'cats/empty.jpg': '',
      'cats/cut.jpg': full.subarray(0, Math.floor(full.length * 0.6)),
      'dogs/cut.png': png.subarray(0, Math.floor(png.length * 0.6)),
      'dogs/notes.jpg': 'these are my notes, not a photo\n',
      'dogs/bomb.png': await pngDeclaring(100_000, 100_000),
      'dogs/drawing.png': '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
      'dogs/readme.txt': 'ignored, not an image extension',
    });
    await mkdir(path.join(root, 'empty'));
    await symlink('..', path.join(root, 'cats', 'loop'));
    await symlink('self.jpg', path.join(root, 'dogs', 'self.jpg'));
    await symlink('nowhere.jpg', path.join(root, 'dogs', 'broken.jpg'));
    let invalidName = true;
    try {
      await writeFile(Buffer.concat([Buffer.from(path.join(root, 'dogs') + path.sep), Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x6a, 0x70, 0x67])]), await jpeg());
    } catch {
      invalidName = false; // a file system that insists on UTF-8 names
    }

    const scan = await scanDataset({ layout: 'folders', train: root, valFraction: 0 });
    assert.deepEqual(scan.classes, ['cats', 'dogs', 'empty']);
    assert.deepEqual(skippedKinds(scan), {
      'cats/cut.jpg': 'corrupt',
      'cats/empty.jpg': 'empty-file',
      'cats/loop': 'symlink-loop',
      'dogs/bomb.png': 'too-many-pixels',
      'dogs/broken.jpg': 'unreadable',
      'dogs/cut.png': 'corrupt',
      'dogs/drawing.png': 'unsupported-format',
      'dogs/notes.jpg': 'not-an-image',
      'dogs/self.jpg': 'symlink-loop',
      ...(invalidName ? { 'dogs/f\ufffd\ufffd.jpg': 'invalid-file-name' } : {}),
    });
    const reason = (name: string) => scan.skipped.find((s) => s.path.endsWith(name))!.reason;
    assert.match(reason('bomb.png'), /too many pixels.*decompression bomb/);
    assert.match(reason('cut.jpg'), /truncated or corrupt/);
    assert.match(reason('empty.jpg'), /empty file \(0 bytes\)/);
    assert.match(reason('notes.jpg'), /not an image/);
    assert.match(reason('drawing.png'), /unsupported image format 'svg'/);
    assert.match(reason('loop'), /symbolic link loop/);
    assert.match(reason('broken.jpg'), /broken symbolic link/);

    assert.deepEqual(
      scan.images.map((i) => [path.basename(i.path), scan.classes[i.label!], i.format, i.width, i.height]),
      [
        ['alpha.png', 'cats', 'png', 16, 16],
        ['cmyk.jpg', 'cats', 'jpeg', 16, 16],
        ['deep.png', 'cats', 'png', 16, 16],
        ['grey.jpg', 'cats', 'jpeg', 16, 16],
        ['my cat 1.jpg', 'cats', 'jpeg', 16, 12],
        ['rotated.jpg', 'cats', 'jpeg', 20, 40],
        ['dog two.png', 'dogs', 'png', 32, 32],
        ['dog.jpg', 'dogs', 'jpeg', 16, 12],
      ],
    );
    assert.deepEqual(scan.counts.train.perClass, [6, 2, 0]);
    assert.equal(scan.ignored, 1);
    assert.ok(scan.warnings.includes(`class folder ${path.join(root, 'empty')} has no image files`), scan.warnings.join('\n'));
    assert.ok(scan.warnings.includes("class 'empty' has no usable training images"));
  });

  it('rejects a decompression bomb from its header, fast', async () => {
    const bomb = await pngDeclaring(100_000, 100_000);
    assert.ok(bomb.length < 100);
    const started = performance.now();
    const check = await checkImageBytes(bomb, { maxPixels: 178_956_970, maxFileBytes: 1 << 20 });
    assert.ok(performance.now() - started < 500);
    assert.deepEqual(check, {
      ok: false,
      kind: 'too-many-pixels',
      reason: 'too many pixels: the image declares more than 178956970 pixels (possible decompression bomb)',
    });
  });

  it('skips files over the size limit without decoding them', async () => {
    const root = await folderOf({
      'cat.big.jpg': await jpeg(200, 200),
      'cat.small.jpg': await jpeg(),
      'dog.small.jpg': await jpeg(),
    });
    const scan = await scanDataset({ layout: 'filename', train: root, valFraction: 0, maxFileBytes: 5000 });
    assert.deepEqual(skippedKinds(scan), { 'cat.big.jpg': 'file-too-large' });
    assert.match(scan.skipped[0]!.reason, /over the limit of 5000 bytes/);
    assert.equal(scan.images.length, 2);
  });

  it('does not scan a folder twice through a link', async () => {
    const root = await folderOf({ 'a/1.jpg': await jpeg(), 'b/2.jpg': await jpeg() });
    await symlink(path.join(root, 'a'), path.join(root, 'b', 'again'));
    const scan = await scanDataset({ layout: 'folders', train: root, valFraction: 0 });
    // a/ is reached first as a class folder; b/again leads to the same real folder.
    assert.deepEqual(skippedKinds(scan), { 'b/again': 'already-scanned' });
    assert.equal(scan.images.length, 2);
  });
});

describe('datasets that cannot train a classifier', () => {
  it('refuses a single class, naming the folder and the fix', async () => {
    const root = await folderOf({ 'ants/1.jpg': await jpeg(), 'ants/2.jpg': await jpeg(), 'bees/readme.txt': 'no images yet' });
    await assert.rejects(scanDataset({ layout: 'folders', train: root }), (error: unknown) => {
      assert.ok(error instanceof DatasetError);
      assert.equal(error.location, root);
      assert.match(error.message, new RegExp(`only one class \\('ants'\\) has images in ${root}, and a classifier needs at least two`));
      assert.match(error.message, /own sub-folder/);
      return true;
    });
  });

  it('refuses a folder without images', async () => {
    const root = await folderOf({ 'notes.txt': 'x', 'data.json': '{}' });
    await assert.rejects(
      scanDataset({ layout: 'filename', train: root }),
      (error: unknown) =>
        error instanceof DatasetError && /no training images found in .* \(2 ignored \(not image files\)\): add \.jpg/.test(error.message),
    );
  });

  it('refuses a dataset whose images are all unreadable', async () => {
    const root = await folderOf({ 'cat.1.jpg': '', 'dog.1.jpg': 'text' });
    await assert.rejects(scanDataset({ layout: 'filename', train: root }), /none of the images in .* can be used \(2 skipped/);
  });
});
