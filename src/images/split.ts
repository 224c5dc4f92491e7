// Stratified train/validation split: the same fraction of every class goes
// to validation, chosen by a seeded shuffle of the class's files sorted by
// their path relative to the dataset folder, so the split depends only on
// the seed and the file names (not on readdir order or where the dataset
// lives on disk).
import { compareCodePoints } from './order.js';
import { createRng, deriveSeed, shuffleInPlace } from './random.js';

/** Validation size for a class of `count` images: round(count × fraction), leaving at least one for training. */
export function validationCount(count: number, fraction: number): number {
  if (count <= 1 || fraction <= 0) return 0;
  return Math.min(count - 1, Math.round(count * fraction));
}

export function stratifiedSplit<T>(
  items: readonly T[],
  classOf: (item: T) => number,
  keyOf: (item: T) => string,
  fraction: number,
  seed: number,
): { train: T[]; val: T[] } {
  const byClass = new Map<number, T[]>();
  for (const item of items) {
    const label = classOf(item);
    let members = byClass.get(label);
    if (!members) byClass.set(label, (members = []));
    members.push(item);
  }
  const train: T[] = [];
  const val: T[] = [];
  for (const [label, members] of [...byClass].sort((a, b) => a[0] - b[0])) {
    members.sort((a, b) => compareCodePoints(keyOf(a), keyOf(b)));
    // One stream per class: adding images to one class leaves the others' splits unchanged.
    shuffleInPlace(members, createRng(deriveSeed(seed, label)));
    const nVal = validationCount(members.length, fraction);
    val.push(...members.slice(0, nVal));
    train.push(...members.slice(nVal));
  }
  return { train, val };
}
