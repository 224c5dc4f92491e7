// How numbers, dates and values read in the report.
import { formatDuration } from '../runner/reporters.js';

export { formatDuration };

export function percent(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined ? '–' : `${(v * 100).toFixed(digits)}%`;
}

export function decimal(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined) return '–';
  if (Number.isInteger(v)) return String(v);
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return v.toExponential(2);
  return v.toFixed(digits).replace(/\.?0+$/, '');
}

/** Metrics that are fractions read better as percentages. */
export function metricValue(name: string, v: number | string | boolean | null | undefined): string {
  if (typeof v !== 'number') return v === null || v === undefined ? '–' : String(v);
  if (/accuracy|precision|recall|f1/i.test(name) && v >= 0 && v <= 1) return percent(v, 2);
  return decimal(v, 4);
}

/** Any parameter value, compactly: objects and arrays as JSON. */
export function paramValue(v: unknown): string {
  if (v === undefined) return '–';
  if (typeof v === 'string') return v;
  return JSON.stringify(v) ?? String(v);
}

/** `2026-11-30 05:41 UTC`: the same for every reader, wherever the file is opened. */
export function utcDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function runDuration(startedAt: string, finishedAt: string): string {
  const ms = Date.parse(finishedAt) - Date.parse(startedAt);
  return Number.isFinite(ms) && ms >= 0 ? formatDuration(ms) : '–';
}
