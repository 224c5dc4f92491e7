// Checks on what a scan found: a dataset that cannot train a classifier (no
// images, a class without images) is a DatasetError; duplicates are warnings.
import path from 'node:path';
import { DatasetError } from './dataset-error.js';
import type { Candidate, Collected, DatasetImage } from './dataset-types.js';

export function noImagesMessage(collected: Collected): string {
  const skipped = collected.skipped.length;
  const ignored = collected.ignored.length;
  const details = [skipped ? `${skipped} skipped` : '', ignored ? `${ignored} ignored (not image files)` : '']
    .filter(Boolean)
    .join(', ');
  return (
    `no training images found in ${collected.trainLocation}${details ? ` (${details})` : ''}: ` +
    `add .jpg/.png/.webp images there, ${collected.hint}`
  );
}

export function checkClasses(collected: Collected, valid: { label: number | null; group: Candidate['group'] }[]): void {
  const { classes, trainLocation } = collected;
  const perClass = new Array<number>(classes.length).fill(0);
  for (const image of valid) if (image.group === 'pool') perClass[image.label!]!++;
  const total = perClass.reduce((a, b) => a + b, 0);
  if (total === 0) {
    throw new DatasetError(
      `none of the images in ${trainLocation} can be used (${collected.skipped.length} skipped, see the reasons): ` +
        'replace the unreadable files',
      trainLocation,
    );
  }
  const present = classes.filter((_, i) => perClass[i]! > 0);
  for (const [i, name] of classes.entries()) {
    if (perClass[i] === 0) collected.warnings.push(`class '${name}' has no usable training images`);
  }
  if (present.length < 2) {
    const found = present.length === 1 ? `only one class ('${present[0]}')` : 'no class';
    throw new DatasetError(
      `${found} has images in ${trainLocation}, and a classifier needs at least two: ${collected.hint}`,
      trainLocation,
    );
  }
}

export function duplicateWarnings(images: DatasetImage[]): string[] {
  const byHash = new Map<string, string>();
  const pairs: string[] = [];
  for (const image of images) {
    const first = byHash.get(image.hash);
    if (first === undefined) byHash.set(image.hash, image.path);
    else pairs.push(`${path.basename(first)} = ${path.basename(image.path)}`);
  }
  if (pairs.length === 0) return [];
  return [`${pairs.length} image(s) have the same content as another (same sha256), e.g. ${pairs.slice(0, 3).join(', ')}`];
}
