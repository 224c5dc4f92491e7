// Comparing runs: the parameters that differ and the metrics side by side,
// with the best value of each metric marked.
import { canonicalJson } from './fingerprint.js';
import type { RunRecord } from './runs.js';
import { metricsOf } from './runs.js';

export interface Comparison {
  runs: string[];
  params: { name: string; values: unknown[] }[];
  metrics: { name: string; values: (number | null)[]; best: number | null; goal: 'max' | 'min' | null }[];
}

/** Loss-like metrics are better low, scores (accuracy, F1...) high; counts and epochs are neither. */
export const metricGoal = (name: string): 'max' | 'min' | null => {
  if (/loss|error/i.test(name)) return 'min';
  if (/accuracy|f1|precision|recall|auc|score/i.test(name)) return 'max';
  return null;
};

export function compareRuns(records: RunRecord[]): Comparison {
  const paramNames = [...new Set(records.flatMap((r) => Object.keys(r.params)))].sort();
  const params = paramNames
    .map((name) => ({ name, values: records.map((r) => r.params[name]) }))
    .filter((p) => new Set(p.values.map((v) => canonicalJson(v))).size > 1);
  const all = records.map(metricsOf);
  const metricNames = [...new Set(all.flatMap((m) => Object.keys(m)))].filter((k) => all.some((m) => typeof m[k] === 'number')).sort();
  const metrics = metricNames.map((name) => {
    const values = all.map((m) => (typeof m[name] === 'number' ? (m[name] as number) : null));
    const goal = metricGoal(name);
    let best: number | null = null;
    values.forEach((v, i) => {
      if (v === null || goal === null) return;
      if (best === null || (goal === 'max' ? v > values[best]! : v < values[best]!)) best = i;
    });
    return { name, values, best: new Set(values).size > 1 ? best : null, goal };
  });
  return { runs: records.map((r) => r.id), params, metrics };
}

export function formatComparison(c: Comparison): string {
  const fmt = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v === undefined || v === null ? '-' : String(v));
  const rows: string[][] = [['', ...c.runs]];
  // Parameters as the user wrote them; metrics rounded.
  for (const p of c.params) rows.push([p.name, ...p.values.map((v) => (v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v)))]);
  const differing = c.metrics.filter((m) => new Set(m.values).size > 1);
  const same = c.metrics.filter((m) => new Set(m.values).size <= 1);
  if (c.params.length && differing.length) rows.push([]);
  for (const m of differing) rows.push([m.name, ...m.values.map((v, i) => `${fmt(v)}${i === m.best ? ' *' : ''}`)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) => (r.length ? r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd() : ''));
  if (!c.params.length) lines.splice(1, 0, '(no parameter differs)');
  if (same.length) lines.push('', `same in every run: ${same.map((m) => `${m.name} ${fmt(m.values[0])}`).join(', ')}`);
  return `${lines.join('\n')}\n* best`;
}
