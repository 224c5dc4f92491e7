// `tlpipe init [DATA_DIR]`: looks at an image folder, recognises its layout,
// counts its classes and images (from the listing: nothing is decoded), and
// writes a commented pipeline that runs as written.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseCsv } from '../images/csv.js';
import type { ConcreteDatasetSpec } from '../images/dataset-spec.js';
import { hasImageExtension } from '../images/formats.js';
import { compileLabelRule, CATS_VS_DOGS_RULE } from '../images/label-rule.js';
import { DatasetError } from '../images/dataset-error.js';
import { detectLayout, type DetectedLayout } from '../images/layout-detect.js';
import { UsageError } from '../runner/errors.js';

export interface DatasetCount {
  /** Images per class, in class order (sorted by name), training and validation together. */
  classes: { name: string; images: number }[];
  test: number;
  /** Whether the layout declares its own validation images (else a split is drawn). */
  declaredValidation: boolean;
}

async function imagesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (hasImageExtension(e.name)) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

async function subfolders(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }).catch(() => []))
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/** Counts what a detected layout holds, by listing files. */
export async function countDataset(spec: ConcreteDatasetSpec): Promise<DatasetCount> {
  const perClass = new Map<string, number>();
  const add = (name: string, n = 1) => perClass.set(name, (perClass.get(name) ?? 0) + n);
  let declaredValidation = false;
  if (spec.layout === 'folders') {
    for (const root of [spec.train, spec.val].filter((x): x is string => !!x)) {
      const names = spec.classes && root === spec.train ? spec.classes : await subfolders(root);
      for (const name of names) add(name, (await imagesUnder(path.join(root, name))).length);
    }
    declaredValidation = !!spec.val;
  } else if (spec.layout === 'filename') {
    const rule = compileLabelRule(spec.labelRule ?? CATS_VS_DOGS_RULE);
    for (const file of await imagesUnder(spec.train)) {
      const outcome = rule.labelOf(path.basename(file));
      if ('label' in outcome) add(outcome.label);
    }
  } else {
    const rows = parseCsv(await readFile(spec.manifest, 'utf8'));
    const header = (rows[0]?.fields ?? []).map((c) => c.trim().toLowerCase());
    const label = header.indexOf('label');
    for (const row of rows.slice(1)) if (row.fields[label]) add(row.fields[label]!);
  }
  const test = spec.test ? (await imagesUnder(spec.test)).length : 0;
  const classes = [...perClass.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, images]) => ({ name, images }));
  return { classes, test, declaredValidation };
}

/** A name usable as a pipeline name and file name. */
export function pipelineName(dataDir: string): string {
  const base = path.basename(path.resolve(dataDir)).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '');
  return base || 'images';
}

const yamlString = (s: string) => (/^[\w./-]+$/.test(s) ? s : JSON.stringify(s));

/** The pipeline text for a dataset at `data` (as written in the file: relative to the project). */
export function pipelineText(name: string, data: string, found: DetectedLayout, count: DatasetCount): string {
  const total = count.classes.reduce((n, c) => n + c.images, 0);
  const shown = count.classes.slice(0, 12).map((c) => `${c.name} ${c.images}`).join(', ');
  const more = count.classes.length > 12 ? `, and ${count.classes.length - 12} more` : '';
  const labelRule =
    found.spec.layout === 'filename'
      ? "\n      # The class is the file name's leading letters (cat.0.jpg → cat); to choose the names instead:\n      # labelRule: {type: contains, classes: [cat, dog]}"
      : '';
  const validation = count.declaredValidation
    ? 'the dataset has its own validation images'
    : 'no validation folder: a seeded, stratified 20 % of each class is held out';
  return `# yaml-language-server: $schema=SCHEMA
#
# Written by \`tlpipe init ${data}\`. What it found:
#   ${found.description.replaceAll(found.root, data)}
#   ${count.classes.length} classes, ${total} labelled images (${shown}${more})
#   ${count.test ? `${count.test} test images to predict` : 'no test images: the predictions stage will be skipped'}
#   ${validation}
#
# Run it:       tlpipe run ${'${FILE}'}
# What would run, and why:   tlpipe status ${'${FILE}'}
# Try another learning rate: tlpipe run ${'${FILE}'} --set lr=3e-4
tlpipe: 1
name: ${name}
params:
  data: ${yamlString(data)}           # the dataset folder (a relative path starts at the project folder)
  out: out/${name}             # where the predictions CSV and the exported model go
  backbone: mobilenetv2-12-int8   # a catalogue name (tlpipe steps), or a path to an .onnx file
  lr: 0.001
  epochs: 10
  batch: 64
  seed: 0
  device: auto                # cuda when its provider is installed, else cpu

stages:
  dataset:
    description: images and labels, every image checked; unreadable ones are skipped and listed
    uses: images.dataset
    with:
      layout: auto            # recognised again on every run: ${found.kind}
      root: \${data}${labelRule}
      valFraction: 0.2        # used only when the dataset has no validation folder
      seed: \${seed}

  backbone:
    description: ImageNet-pretrained classifier from the model catalogue (downloaded once, verified)
    uses: backbone.load
    with:
      model: \${backbone}

  transform:
    description: shorter side 256, centre crop 224, the backbone's normalisation
    uses: images.transform
    inputs: {backbone: backbone}
    with:
      resize: 256
      centerCrop: 224

  freeze:
    description: cut before the classifier; the output is the pooled feature vector
    uses: backbone.freeze
    inputs: {backbone: backbone}

  features:
    description: one forward pass over every image, cached and resumable
    uses: features.extract
    inputs: {dataset: dataset, transform: transform, model: freeze}
    with:
      device: \${device}

  head:
    description: the new classifier, Linear(features, ${count.classes.length})
    uses: head.define
    inputs: {dataset: dataset, model: freeze}
    with:
      kind: linear
      seed: \${seed}

  train:
    uses: head.train
    inputs: {head: head, features: features, dataset: dataset}
    with:
      optimizer: adam
      lr: \${lr}
      epochs: \${epochs}
      batchSize: \${batch}
      seed: \${seed}
      device: \${device}

  evaluate:
    uses: head.evaluate
    inputs: {train: train, features: features, dataset: dataset}

  predictions:
    description: id,label for each test image, sorted by id (skipped when there are none)
    uses: export.csv
    inputs: {train: train, features: features, dataset: dataset}
    with:
      to: \${out}/predictions.csv
      label: name

  model:
    description: backbone and head in one ONNX file, softmax output (tlpipe predict uses it)
    uses: export.model
    inputs: {train: train, model: freeze, transform: transform}
    with:
      to: \${out}/model.onnx
`;
}

export interface InitResult {
  file: string;
  found: DetectedLayout;
  count: DatasetCount;
}

/**
 * Writes the pipeline for `dataDir` to `file` (default pipelines/NAME.yaml in
 * the project). An existing file is kept unless `force`.
 */
export async function initPipeline(dataDir: string, options: { projectDir: string; file?: string; force?: boolean }): Promise<InitResult> {
  const root = path.resolve(dataDir);
  let found;
  try {
    found = await detectLayout(root);
  } catch (e) {
    if (e instanceof DatasetError) throw new UsageError(`tlpipe init: ${e.message}`);
    throw e;
  }
  const count = await countDataset(found.spec);
  const name = pipelineName(root);
  const file = path.resolve(options.file ?? path.join(options.projectDir, 'pipelines', `${name}.yaml`));
  if (existsSync(file) && !options.force) {
    throw new UsageError(`${path.relative(process.cwd(), file) || file} already exists: pass --out FILE to write elsewhere, or --force to replace it.`);
  }
  const rel = path.relative(options.projectDir, root) || '.';
  const data = rel.startsWith('..') ? root : rel.split(path.sep).join('/');
  const shown = path.relative(process.cwd(), file) || file;
  let text = pipelineText(name, data, found, count).replaceAll('${FILE}', shown);
  // The schema comment points at the project's copy when there is one.
  const schema = path.join(options.projectDir, 'schemas', 'pipeline.schema.json');
  if (existsSync(schema)) text = text.replace(/\$schema=\S+/, `$schema=${path.relative(path.dirname(file), schema).split(path.sep).join('/')}`);
  else text = text.replace(/^# yaml-language-server:.*\n#\n/, '');
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tlpipe-tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
  return { file, found, count };
}
