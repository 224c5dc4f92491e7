// The built-in catalogue of ONNX Model Zoo backbones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CATALOGUE, CatalogueError, findCatalogueEntry } from '../src/onnx/catalogue.js';
import { fixture, needsFixtures } from './support/fixtures.js';

const ZOO = 'https://github.com/onnx/models/raw/main/validated/vision/classification/';

test('every entry is complete: zoo URL named after the entry, sha256, size, preprocessing', () => {
  assert.deepEqual(CATALOGUE.map((e) => e.name), [
    'mobilenetv2-12-int8',
    'mobilenetv2-12',
    'resnet50-v1-12',
    'resnet50-v1-12-int8',
    'resnet50-v2-7',
    'resnet18-v1-7',
    'efficientnet-lite4-11',
  ]);
  for (const entry of CATALOGUE) {
    assert.ok(entry.url.startsWith(ZOO), entry.url);
    assert.ok(entry.url.endsWith(`/model/${entry.name}.onnx`), entry.url);
    assert.match(entry.sha256, /^[0-9a-f]{64}$/);
    assert.ok(Number.isInteger(entry.sizeBytes) && entry.sizeBytes > 1_000_000, entry.name);
    assert.ok(entry.preprocessing, entry.name);
    assert.equal(entry.quantized, entry.name.endsWith('-int8'));
  }
  assert.equal(new Set(CATALOGUE.map((e) => e.sha256)).size, CATALOGUE.length);
});

test('sizes and digests are the published ones', () => {
  const published = Object.fromEntries(CATALOGUE.map((e) => [e.name, [e.sizeBytes, e.sha256.slice(0, 12)]]));
  assert.deepEqual(published, {
    'mobilenetv2-12-int8': [3655033, 'cc028fe6cae7'],
    'mobilenetv2-12': [13964571, 'c0c3f76d93fa'],
    'resnet50-v1-12': [102576593, '3f03fdef724b'],
    'resnet50-v1-12-int8': [25816052, 'c234f3097598'],
    'resnet50-v2-7': [102442452, '79102261eb6e'],
    'resnet18-v1-7': [46820737, '4e8f8653e7a2'],
    'efficientnet-lite4-11': [51946641, 'd111689907c0'],
  });
});

test('ImageNet models are NCHW with the ImageNet mean and std on 0..1 values', () => {
  const p = findCatalogueEntry('resnet50-v1-12').preprocessing!;
  assert.deepEqual(
    [p.layout, p.pixelRange, p.mean, p.std, p.resizeShorterSide, p.cropSize],
    ['NCHW', '0..1', [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 256, 224],
  );
});

test('efficientnet-lite4 is NHWC with (v − 127) / 128 on 0..255 values', () => {
  const entry = findCatalogueEntry('efficientnet-lite4-11');
  const p = entry.preprocessing!;
  assert.deepEqual([p.layout, p.pixelRange, p.mean, p.std], ['NHWC', '0..255', [127, 127, 127], [128, 128, 128]]);
  // The result spans about [-1, 1].
  assert.ok(Math.abs((0 - p.mean[0]) / p.std[0] + 0.99) < 0.01 && Math.abs((255 - p.mean[0]) / p.std[0] - 1) < 0.01);
  assert.match(entry.note ?? '', /batch size of 1 is fixed/);
});

test('names are found exactly or ignoring case; unknown names get a suggestion', () => {
  assert.equal(findCatalogueEntry('ResNet18-v1-7').name, 'resnet18-v1-7');
  const all =
    'Available: mobilenetv2-12-int8, mobilenetv2-12, resnet50-v1-12, resnet50-v1-12-int8, resnet50-v2-7, ' +
    'resnet18-v1-7, efficientnet-lite4-11; or give the path of an .onnx file.';
  assert.throws(
    () => findCatalogueEntry('mobilenetv2-int8'),
    new CatalogueError(`"mobilenetv2-int8" is not in the model catalogue. Did you mean "mobilenetv2-12-int8"? ${all}`),
  );
  assert.throws(
    () => findCatalogueEntry('efficientnet'),
    new CatalogueError(`"efficientnet" is not in the model catalogue. Did you mean "efficientnet-lite4-11"? ${all}`),
  );
  assert.throws(() => findCatalogueEntry('vgg16'), new CatalogueError(`"vgg16" is not in the model catalogue. ${all}`));
});

test('the int8 MobileNetV2 entry matches the fixture file', { skip: needsFixtures }, async () => {
  const bytes = await readFile(fixture('models', 'mobilenetv2-12-int8.onnx'));
  const entry = findCatalogueEntry('mobilenetv2-12-int8');
  assert.equal(bytes.length, entry.sizeBytes);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), entry.sha256);
});
