// The `--json` summary of a run, and the metrics printed at its end.
import type { Json } from './step.js';
import type { RunRecord } from './runs.js';

export function runSummary(r: RunRecord) {
  return {
    runId: r.id,
    status: r.status,
    pipeline: r.pipeline.name,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    params: r.params,
    stages: r.stages.map((s) => ({
      name: s.name,
      uses: s.uses,
      status: s.status,
      durationMs: s.durationMs,
      fingerprint: s.fingerprint,
      reason: s.reason,
      ...(s.error ? { error: s.error } : {}),
      ...(s.note ? { note: s.note } : {}),
      ...(s.transfer ? { pulledBytes: s.transfer.bytes, pullMs: s.transfer.ms } : {}),
      ...(s.pushed ? { pushedBytes: s.pushed.bytes, pushMs: s.pushed.ms } : {}),
    })),
    metrics: Object.fromEntries(r.stages.filter((s) => Object.keys(s.metrics ?? {}).length).map((s) => [s.name, s.metrics])),
    outputs: r.outputs,
    warnings: r.warnings,
  };
}

const isScalar = (v: Json) => typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean';

function show(v: Json): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  return String(v);
}

/** Scalar metrics per stage, one line each; tables (confusion matrices) are left to `show` and reports. */
export function formatMetrics(r: RunRecord): string {
  const lines: string[] = [];
  for (const s of r.stages) {
    const scalars = Object.entries(s.metrics ?? {}).filter(([, v]) => isScalar(v));
    if (scalars.length) lines.push(`${s.name}: ${scalars.map(([k, v]) => `${k} ${show(v)}`).join(', ')}`);
  }
  return lines.join('\n');
}
