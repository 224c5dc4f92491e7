// Choosing and suggesting names: "did you mean" for names a user typed (tensors,
// catalogue entries) and fresh names that do not collide with a graph's own.

/** Levenshtein distance, case-insensitive: typos in names are rarely about case. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let previous = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const current = [i];
    for (let j = 1; j <= t.length; j++) {
      const substitution = previous[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[t.length]!;
}

/** The candidate closest to `name`, when it is close enough to be a plausible typo. */
export function closestName(name: string, candidateNames: Iterable<string>): string | undefined {
  const candidates = [...candidateNames];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  // A prefix match ("resnet50" for "resnet50-v1-12") is a good guess whatever the distance.
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3))) return best;
  for (const candidate of candidates) if (candidate.toLowerCase().startsWith(name.toLowerCase()) && name.length >= 3) return candidate;
  return undefined;
}

/** ' Did you mean "x"?' or '' when nothing is close. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const guess = closestName(name, candidates);
  return guess === undefined ? '' : ` Did you mean "${guess}"?`;
}

/** `wanted`, or `wanted_1`, `wanted_2`... whichever is not taken yet; the result is then taken. */
export function uniqueName(wanted: string, taken: Set<string>): string {
  let name = wanted;
  for (let i = 1; taken.has(name); i++) name = `${wanted}_${i}`;
  taken.add(name);
  return name;
}
