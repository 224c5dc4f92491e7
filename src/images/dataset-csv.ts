// Collecting candidates from a CSV manifest (columns path,label; paths
// relative to the CSV), with an optional validation manifest.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseCsv, CsvSyntaxError } from './csv.js';
import { DatasetError } from './dataset-error.js';
import type { ResolvedDatasetSpec } from './dataset-spec.js';
import { emptyCollected, sortClassNames } from './dataset-folders.js';
import type { Candidate, Collected } from './dataset-types.js';

export async function collectFromCsv(spec: Extract<ResolvedDatasetSpec, { layout: 'csv' }>): Promise<Collected> {
  const collected = emptyCollected(
    [],
    spec.manifest,
    `check the label column of ${spec.manifest}: it needs at least two different labels`,
  );
  const seen = new Set<string>();
  const rows = [
    ...(await readManifest(spec.manifest, 'manifest', 'pool')),
    ...(spec.valManifest ? await readManifest(spec.valManifest, 'valManifest', 'val') : []),
  ];
  const labelled: { row: ManifestRow; className: string }[] = [];
  for (const row of rows) {
    const where = `${path.basename(row.manifest)} line ${row.line}`;
    if (seen.has(row.path)) {
      collected.warnings.push(`${row.path} is listed more than once (again at ${where}); the first row is used`);
      continue;
    }
    seen.add(row.path);
    if (row.label === '') {
      collected.skipped.push({ path: row.path, kind: 'no-label', reason: `empty label at ${where}` });
      continue;
    }
    if (spec.classes && !spec.classes.includes(row.label)) {
      collected.skipped.push({
        path: row.path,
        kind: 'no-label',
        reason: `label '${row.label}' at ${where} is not one of dataset.classes ${JSON.stringify(spec.classes)}`,
      });
      continue;
    }
    labelled.push({ row, className: row.label });
  }
  collected.classes = spec.classes ?? sortClassNames(labelled.map((l) => l.className));
  for (const { row, className } of labelled) {
    collected.candidates.push({
      path: row.path,
      key: path.relative(path.dirname(spec.manifest), row.path).split(path.sep).join('/'),
      group: row.group,
      className,
      id: null,
    });
  }
  return collected;
}

interface ManifestRow {
  manifest: string;
  line: number;
  path: string;
  label: string;
  group: 'pool' | 'val';
}

async function readManifest(manifest: string, field: string, group: 'pool' | 'val'): Promise<ManifestRow[]> {
  let text: string;
  try {
    text = await readFile(manifest, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DatasetError(
      code === 'ENOENT'
        ? `dataset.${field} ${manifest} does not exist: check the path (relative paths start at the pipeline file)`
        : `cannot read dataset.${field} ${manifest}: ${(error as Error).message}`,
      manifest,
    );
  }
  let rows;
  try {
    rows = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvSyntaxError) throw new DatasetError(`${manifest}: ${error.message}`, manifest);
    throw error;
  }
  if (rows.length === 0) throw new DatasetError(`${manifest} is empty: it needs a header row path,label and one row per image`, manifest);
  const header = rows[0]!.fields.map((name) => name.trim().toLowerCase());
  const pathColumn = header.indexOf('path');
  const labelColumn = header.indexOf('label');
  if (pathColumn < 0 || labelColumn < 0) {
    throw new DatasetError(
      `${manifest} has no ${pathColumn < 0 ? "'path'" : "'label'"} column: its first row must be a header naming the columns, e.g. path,label`,
      manifest,
    );
  }
  const base = path.dirname(manifest);
  const result: ManifestRow[] = [];
  for (const row of rows.slice(1)) {
    const file = (row.fields[pathColumn] ?? '').trim();
    if (file === '') continue;
    result.push({
      manifest,
      line: row.line,
      path: path.resolve(base, file),
      label: (row.fields[labelColumn] ?? '').trim(),
      group,
    });
  }
  return result;
}
