// One deterministic string order for every sort in a dataset scan: by
// Unicode code point (what Python's sorted() uses for class folders), not by
// UTF-16 unit or locale, so results match across machines and languages.

export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++; // skip the low surrogate of an astral character
  }
  return a.length - b.length;
}

/** Test ids: numbers ascending first, then string ids in code-point order. */
export function compareIds(a: number | string, b: number | string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return compareCodePoints(a, b);
}
