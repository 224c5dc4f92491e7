// Sweeps: `--set lr=1e-4,1e-3` (or a `sweep:` section) expands into one set of
// overrides per combination; each combination is its own run, and the stages
// the combinations share are computed once through the cache.
import { parseScalar } from './load.js';

/** A comma list counts as a sweep only when every item is a number or boolean. */
function sweepValues(value: string): string[] | undefined {
  if (!value.includes(',')) return undefined;
  const parts = value.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '' || typeof parseScalar(p) === 'string')) return undefined;
  return parts;
}

export function expandSweep(sets: string[], section: Record<string, unknown[]> | undefined): string[][] {
  const axes: { key: string; values: string[] }[] = [];
  const fixed: string[] = [];
  for (const s of sets) {
    const eq = s.indexOf('=');
    const values = eq > 0 ? sweepValues(s.slice(eq + 1)) : undefined;
    if (values) axes.push({ key: s.slice(0, eq), values });
    else fixed.push(s);
  }
  for (const [key, values] of Object.entries(section ?? {})) {
    const overridden = [...fixed, ...axes.map((a) => `${a.key}=`)].some((s) => s.startsWith(`${key}=`));
    if (!overridden) axes.push({ key, values: values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))) });
  }
  let combos: string[][] = [fixed];
  for (const axis of axes) combos = combos.flatMap((c) => axis.values.map((v) => [...c, `${axis.key}=${v}`]));
  return combos;
}
