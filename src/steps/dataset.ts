// `images.dataset`: finds, labels, validates and splits the images. Its
// artifact is a manifest (path, content hash, label, id, split), so the cache
// follows the data's content, not its timestamps. Unreadable images are
// skipped, counted and listed, never silently.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { datasetManifestKind, type DatasetManifest, datasetPreviewJson, datasetValueJson, MANIFEST_FILE, writeDatasetManifest } from '../artifacts/dataset-manifest.js';
import type { DatasetScan } from '../images/dataset-types.js';
import { datasetSpecSchema, DEFAULT_VAL_FRACTION, resolveDatasetSpec, type DatasetSpec } from '../images/dataset-spec.js';
import type { ImageCheck } from '../images/validate.js';
import { defineStep, type Json } from '../runner/step.js';
import { resolveAutoLayout } from '../images/layout-detect.js';
import { keyPath, storedPath } from '../runner/location.js';
import { withoutIds } from './schema.js';

const SHOWN_SKIPS = 20;
/** Parameters that name places: they enter the fingerprint relative to the project. */
const PATH_FIELDS = ['root', 'train', 'val', 'test', 'manifest', 'valManifest'] as const;

/** A detected layout as it enters the key: its paths relative to the project (or by content alone outside it). */
function keyedLayout(spec: Record<string, Json>, projectDir: string): Json {
  const out = { ...spec };
  for (const field of PATH_FIELDS) {
    const v = out[field];
    if (typeof v === 'string' && v !== '') out[field] = keyPath(projectDir, v);
  }
  return out;
}
/** The chunk log remembering image checks; versioned with the check itself. */
const CHECKS_SCOPE = 'image-checks-v1';

export const datasetStep = defineStep<DatasetSpec>({
  type: 'images.dataset',
  version: 1,
  produces: datasetManifestKind.name,
  description: 'Image folders (Kaggle file-name labels, one folder per class) or a CSV manifest; stratified validation split; corrupt images skipped and listed.',
  paramsSchema: withoutIds(datasetSpecSchema),

  preview(params) {
    const heldOut = params.layout === 'csv' ? params.valManifest !== undefined : 'val' in params && params.val !== undefined;
    return datasetPreviewJson({ hasValidationSplit: heldOut || (params.valFraction ?? DEFAULT_VAL_FRACTION) > 0 });
  },

  paths(params) {
    // The validation and test folders are optional (absent when missing); the rest must exist.
    // A dataset with a source is fetched before planning when its folder is missing.
    if (params.layout === 'auto') return { reads: params.source ? [] : [{ param: 'root', path: params.root, what: 'dataset folder' }] };
    resolveDatasetSpec(params, '/'); // its errors (a bad label rule...) are reported at validation too
    if (params.layout === 'csv') return { reads: [{ param: 'manifest', path: params.manifest, what: 'dataset manifest' }] };
    return { reads: [{ param: 'train', path: params.train, what: 'training image folder' }] };
  },

  keyParams(params, ctx) {
    // Where the data is enters the key only relative to the project; data
    // outside it (a mounted folder) is keyed by its content alone.
    const out: Record<string, Json> = { ...(params as unknown as Record<string, Json>) };
    for (const field of PATH_FIELDS) {
      const v = out[field];
      if (typeof v === 'string' && v !== '') out[field] = keyPath(ctx.projectDir, v);
    }
    return out;
  },

  async dependencies(params, ctx) {
    let spec;
    let layout: Json = null;
    if (params.layout === 'auto' && params.source && !existsSync(path.resolve(ctx.projectDir, params.root))) {
      // Not downloaded yet (`status`): nothing to hash; `run` fetches it first.
      return { notDownloaded: params.source as unknown as Json };
    }
    const concrete = await resolveAutoLayout(params, ctx.projectDir);
    // What `auto` recognised is part of the fingerprint: a reorganised folder is a new dataset.
    if (concrete.detected) layout = keyedLayout(concrete.spec as unknown as Record<string, Json>, ctx.projectDir);
    spec = resolveDatasetSpec(concrete.spec, ctx.projectDir);
    // Content hashes of every folder or manifest read, by role: never by an
    // absolute path, so two checkouts of one project share their keys.
    const roots: [string, string | null | undefined][] =
      spec.layout === 'csv'
        ? [['manifest', spec.manifest], ['manifestFolder', path.dirname(spec.manifest)], ['valManifest', spec.valManifest], ['test', spec.test]]
        : [['train', spec.train], ['val', spec.val], ['test', spec.test]];
    const optional = new Set(spec.layout === 'csv' ? [spec.test] : [spec.val, spec.test]);
    const content: Record<string, Json> = {};
    for (const [role, root] of roots) {
      if (!root) continue;
      if (optional.has(root) && !existsSync(root)) {
        content[role] = 'absent'; // an optional folder that appears later changes the fingerprint
        continue;
      }
      try {
        content[role] = await ctx.hashPath(root);
      } catch {
        throw new Error(`${root} does not exist. Check the dataset path (relative paths start at the project folder ${ctx.projectDir}).`);
      }
    }
    return layout ? { layout, content } : content;
  },

  async run(ctx, params) {
    // Image checks (a full decode each) are remembered by content hash across
    // runs, so a changed split seed or an added image does not re-decode the rest.
    const memo = ctx.chunks(CHECKS_SCOPE);
    const knownChecks = new Map<string, ImageCheck>();
    for (const chunk of await memo.readAll()) {
      for (const [k, v] of Object.entries(JSON.parse(chunk.toString('utf8')) as Record<string, ImageCheck>)) knownChecks.set(k, v);
    }
    const newChecks: Record<string, ImageCheck> = {};
    const { scanDataset } = await import('../images/dataset.js'); // sharp, only when scanning
    let scan: DatasetScan;
    try {
      const { spec, detected } = await resolveAutoLayout(params, ctx.projectDir);
      if (detected) ctx.log(detected.description);
      scan = await scanDataset(spec, {
        baseDir: ctx.projectDir,
        signal: ctx.signal,
        onProgress: (done, total) => ctx.progress(done, total, 'images'),
        knownChecks,
        onChecked: (key, check) => {
          newChecks[key] = check;
        },
      });
    } finally {
      if (Object.keys(newChecks).length) await memo.append(Buffer.from(JSON.stringify(newChecks)));
    }
    // Paths inside the project are stored relative to it, so the manifest is
    // the same in every checkout; readers resolve them with ctx.inputPath.
    const stored = (p: string) => storedPath(ctx.projectDir, p);
    const projectPrefix = `${ctx.projectDir}${path.sep}`;
    const manifest: DatasetManifest = {
      classes: scan.classes,
      images: scan.images.map((i) => ({ ...i, path: stored(i.path) })),
      counts: scan.counts,
      validation: scan.validation,
      skipped: scan.skipped.map((i) => ({ ...i, path: stored(i.path) })),
      ignored: scan.ignored,
      warnings: scan.warnings.map((w) => w.split(projectPrefix).join('')),
    };
    const machineLocal = [...manifest.images, ...manifest.skipped].some((i) => path.isAbsolute(i.path));
    await writeDatasetManifest(ctx.outDir, manifest);

    const perClass = (counts: { perClass: number[] }) => scan.classes.map((c, i) => `${c} ${counts.perClass[i]}`).join(', ');
    ctx.log(`train ${scan.counts.train.total} (${perClass(scan.counts.train)}), validation ${scan.counts.val.total} (${perClass(scan.counts.val)}), test ${scan.counts.test.total}`);
    for (const w of manifest.warnings) ctx.warn(w);
    if (scan.skipped.length) {
      ctx.warn(`${scan.skipped.length} unreadable image(s) skipped:`);
      for (const s of manifest.skipped.slice(0, SHOWN_SKIPS)) ctx.warn(`  ${s.path}: ${s.reason}`);
      if (scan.skipped.length > SHOWN_SKIPS) ctx.warn(`  ... and ${scan.skipped.length - SHOWN_SKIPS} more (all listed in the artifact's ${MANIFEST_FILE})`);
    }
    return {
      value: datasetValueJson({
        classes: scan.classes,
        counts: { train: scan.counts.train.total, val: scan.counts.val.total, test: scan.counts.test.total },
        validation: scan.validation,
        skipped: manifest.skipped.map((s) => ({ path: s.path, reason: s.reason })),
        ignored: manifest.ignored,
      }),
      metrics: { images: scan.images.length, skipped: scan.skipped.length },
      chunkScopes: [CHECKS_SCOPE],
      ...(machineLocal ? { machineLocal } : {}),
    };
  },
});
