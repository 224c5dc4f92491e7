// The report page: one self-contained HTML file (inline CSS, inline SVG,
// images as data: URIs, a policy forbidding anything else) that opens from
// disk anywhere. The key number comes first, details after.
import { compareRuns } from '../runner/compare.js';
import type { RunRecord } from '../runner/runs.js';
import { confusionMatrix, perClassTable } from './confusion.js';
import { runColour, trainingCurves } from './curves.js';
import { type Evaluation, evaluationOf, type Headline, headlineOf, scalarMetrics, type Training, trainingOf } from './data.js';
import { decimal, metricValue, paramValue, percent, runDuration, utcDate } from './format.js';
import { html, type Markup, trusted } from './markup.js';
import { mistakeGallery } from './mistakes.js';
import { regularizationSearch } from './regularization.js';
import { STYLESHEET } from './style.js';
import { stageTimeline } from './timeline.js';

export interface ReportOptions {
  /** Image path → data: URI, for the misclassified images. */
  thumbnails?: Map<string, string>;
  title?: string;
}

/** Nothing may be fetched: not scripts, fonts, or images other than those embedded. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

interface RunView {
  record: RunRecord;
  colour: string;
  training: Training | null;
  evaluation: Evaluation | null;
  headline: Headline | null;
}

function viewOf(record: RunRecord, index: number): RunView {
  return { record, colour: runColour(index), training: trainingOf(record), evaluation: evaluationOf(record), headline: headlineOf(record) };
}

export function renderReport(records: RunRecord[], options: ReportOptions = {}): string {
  if (!records.length) throw new RangeError('a report needs at least one run');
  const runs = records.map(viewOf);
  const thumbnails = options.thumbnails ?? new Map<string, string>();
  const names = [...new Set(records.map((r) => r.pipeline.name))];
  const title = options.title ?? (runs.length === 1 ? `${names[0]} · run ${records[0]!.id}` : `${names.join(', ')} · ${runs.length} runs compared`);
  const body = runs.length === 1 ? singleRun(runs[0]!, thumbnails) : severalRuns(runs, thumbnails);
  return `<!DOCTYPE html>
${html`<html lang="en"><head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tlpipe report">
<title>${title}</title>
<style>${trusted(STYLESHEET)}</style>
</head><body>
${body}
<footer>tlpipe report · generated ${utcDate(new Date().toISOString())} · self-contained: this file loads nothing from anywhere</footer>
</body></html>`}
`;
}

// ── one run ──────────────────────────────────────────────────────────────

function singleRun(run: RunView, thumbnails: Map<string, string>): Markup {
  const r = run.record;
  return html`<header class="top">
<div class="eyebrow">tlpipe run report</div>
<h1>${r.pipeline.name}</h1>
${runMeta(r)}
</header>
<main>
${hero(run)}
${problems(r)}
${runDetails(run, thumbnails, [run])}
</main>`;
}

function runMeta(r: RunRecord): Markup {
  return html`<p class="meta"><span class="badge run-${r.status}">${r.status}</span>
<span>run <code>${r.id}</code></span>
<span>${utcDate(r.startedAt)}</span>
<span>took ${runDuration(r.startedAt, r.finishedAt)}</span>
<span>${gitText(r)}</span>
<span>pipeline <code>${r.pipeline.file}</code></span></p>`;
}

function gitText(r: RunRecord): Markup {
  if (!r.git) return html`not in a git repository`;
  return html`commit <code title="${r.git.commit}">${r.git.commit.slice(0, 10)}</code>${r.git.dirty ? html` <span class="dirty" title="the working tree had uncommitted changes">+ uncommitted changes</span>` : ''}`;
}

function stat(label: string, value: string, sub?: string): Markup {
  return html`<div class="stat"><div class="stat-value">${value}</div><div class="stat-label">${label}</div>${sub ? html`<div class="stat-sub">${sub}</div>` : ''}</div>`;
}

function hero(run: RunView): Markup {
  const { record: r, training, evaluation, headline } = run;
  const stats: Markup[] = [];
  if (evaluation?.loss !== null && evaluation?.loss !== undefined) stats.push(stat('validation loss', decimal(evaluation.loss, 4)));
  if (evaluation?.macroF1 !== null && evaluation?.macroF1 !== undefined) stats.push(stat('macro F1', percent(evaluation.macroF1)));
  if (training?.regularization) stats.push(stat('weight decay', String(training.regularization.chosen), `chosen of ${training.regularization.candidates.length}`));
  if (training?.history.length && training.history.length > 1) {
    const last = training.history[training.history.length - 1]!;
    const best = training.history.find((e) => e.epoch === training.bestEpoch) ?? last;
    stats.push(stat('best epoch', training.bestEpoch !== null ? `${training.bestEpoch}` : '–', `of ${last.epoch}`));
    if (best.trainAccuracy !== null) stats.push(stat('training accuracy', percent(best.trainAccuracy), 'at the best epoch'));
  }
  const classes = evaluation?.classes.length || training?.classes.length;
  if (classes) stats.push(stat('classes', String(classes)));
  const ran = r.stages.filter((s) => s.status === 'ran').length;
  const cached = r.stages.filter((s) => s.status === 'cached').length;
  stats.push(stat('stages', `${ran} ran`, `${cached} cached of ${r.stages.length}`));
  stats.push(stat('duration', runDuration(r.startedAt, r.finishedAt)));
  const big = headline
    ? html`<div class="headline"><div class="headline-value">${percent(headline.value)}</div><div class="headline-label">${headline.label}</div>
<div class="headline-sub">${evaluation?.count ? `${evaluation.count} validation images · ` : ''}stage ${headline.source}</div></div>`
    : html`<div class="headline muted"><div class="headline-value status-word run-${r.status}">${r.status}</div><div class="headline-label">${whyNoHeadline(r)}</div></div>`;
  return html`<section class="hero">${big}<div class="stats">${stats}</div></section>`;
}

function whyNoHeadline(r: RunRecord): string {
  const failed = r.stages.filter((s) => s.status === 'failed').map((s) => s.name);
  if (failed.length) return `stage${failed.length > 1 ? 's' : ''} ${failed.join(', ')} failed`;
  if (r.status === 'interrupted') return 'interrupted before a validation accuracy was recorded';
  return 'no validation accuracy recorded';
}

/** Why a run did not succeed, up front: the failed stages and their errors. */
function problems(r: RunRecord): Markup {
  const failed = r.stages.filter((s) => s.status === 'failed');
  const parts: Markup[] = [];
  if (r.status !== 'succeeded' || failed.length) {
    const what = r.status === 'interrupted' ? 'The run was interrupted. Finished stages are kept: running the pipeline again resumes it.' : failed.length ? `The run failed: ${failed.length} stage${failed.length > 1 ? 's' : ''} failed.` : 'The run failed.';
    parts.push(html`<section class="alert alert-error" role="alert"><h2>${what}</h2>
${failed.map((s) => html`<div class="error-stage"><div><b>${s.name}</b> <span class="tl-uses">${s.uses}</span></div><pre>${s.error ?? 'no error message recorded'}</pre></div>`)}</section>`);
  }
  if (r.warnings.length) {
    parts.push(html`<section class="alert alert-warn"><h2>${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''}</h2><ul>${r.warnings.map((w) => html`<li>${w}</li>`)}</ul></section>`);
  }
  return html`${parts}`;
}

/** Everything about one run below its headline. `curvesOf` is the run itself, or nothing when curves are drawn overlaid above. */
function runDetails(run: RunView, thumbnails: Map<string, string>, curvesOf: RunView[]): Markup {
  const { record: r, training, evaluation } = run;
  // One full-batch solve (lbfgs) has a single point: no curve to draw.
  const curves =
    training && curvesOf.length && training.history.length > 1
      ? html`<section class="card"><h2>Training curves <small>stage ${training.stage}</small></h2>${trainingCurves(curvesOf.map((v) => ({ run: v.record.id, training: v.training!, colour: v.colour })))}</section>`
      : '';
  const search = training?.regularization
    ? html`<section class="card"><h2>Regularisation search <small>stage ${training.stage}</small></h2>${regularizationSearch(training.regularization)}</section>`
    : '';
  const evaluationPart = evaluation
    ? html`<section class="card"><h2>Evaluation <small>stage ${evaluation.stage}${evaluation.count !== null ? ` · ${evaluation.count} validation images` : ''}</small></h2>
<div class="${evaluation.classes.length > 5 ? 'stacked' : 'two-col'}">
<div><h3>Confusion matrix</h3>${evaluation.confusion && evaluation.classes.length === evaluation.confusion.length ? confusionMatrix(evaluation.classes, evaluation.confusion, r.id) : html`<p class="empty">No confusion matrix recorded.</p>`}</div>
<div><h3>Per class</h3>${evaluation.perClass.length ? perClassTable(evaluation.perClass) : html`<p class="empty">No per-class scores recorded.</p>`}</div>
</div></section>
<section class="card"><h2>Misclassified validation images</h2>${mistakeGallery(evaluation, thumbnails, r.id)}</section>`
    : '';
  return html`${curves}${search}${evaluationPart}
<div class="two-col wide-left">
<section class="card"><h2>Stage timeline</h2>${stageTimeline(r.stages, r.id)}</section>
<section class="card"><h2>Parameters</h2>${parameterTable(r)}</section>
</div>
${metricsTable(r)}`;
}

function parameterTable(r: RunRecord): Markup {
  const entries = Object.entries(r.params).sort(([a], [b]) => a.localeCompare(b));
  const overrides = r.set.length ? html`<p class="overrides">Set on the command line: ${r.set.map((s) => html`<code>--set ${s}</code> `)}</p>` : '';
  if (!entries.length) return html`<p class="empty">This pipeline declares no parameters.</p>${overrides}`;
  return html`<table class="kv">${entries.map(([k, v]) => html`<tr><th scope="row">${k}</th><td><code>${paramValue(v)}</code></td></tr>`)}</table>${overrides}`;
}

/** Every scalar metric, grouped by stage, in columns: many short rows read better side by side. */
function metricsTable(r: RunRecord): Markup {
  const metrics = scalarMetrics(r);
  if (!metrics.length) return html``;
  const stages = [...new Set(metrics.map((m) => m.stage))];
  const groups = stages.map(
    (stage) => html`<div class="metric-group"><h3>${stage}</h3><table class="kv metrics">${metrics
      .filter((m) => m.stage === stage)
      .map((m) => html`<tr><th scope="row">${m.name}</th><td class="num">${metricValue(m.name, m.value)}</td></tr>`)}</table></div>`,
  );
  return html`<section class="card"><h2>All metrics</h2><div class="metric-groups">${groups}</div></section>`;
}

// ── several runs ─────────────────────────────────────────────────────────

function severalRuns(runs: RunView[], thumbnails: Map<string, string>): Markup {
  const names = [...new Set(runs.map((r) => r.record.pipeline.name))];
  const starts = runs.map((r) => r.record.startedAt).sort();
  const comparison = compareRuns(runs.map((r) => r.record));
  const withHeadline = runs.filter((r) => r.headline);
  const bestRun = withHeadline.length > 1 ? withHeadline.reduce((a, b) => (b.headline!.value > a.headline!.value ? b : a)) : null;
  const trained = runs.filter((r) => r.training?.history.length);

  const differences = (run: RunView) => comparison.params.map((p) => `${p.name}=${paramValue(p.values[runs.indexOf(run)])}`);
  // The id alone says little in a legend; the parameters that differ say what the run tried.
  const runLabel = (run: RunView) => (differences(run).length ? `${run.record.id} (${differences(run).join(', ')})` : run.record.id);
  const cards = runs.map((run) => {
    const diff = differences(run);
    return html`<div class="run-card${run === bestRun ? ' best' : ''}" style="--run:${run.colour}" data-run="${run.record.id}">
<div class="run-card-id"><span class="swatch"></span><code>${run.record.id}</code>${run === bestRun ? html`<span class="best-tag">★ best</span>` : ''}</div>
<div class="run-card-value">${run.headline ? percent(run.headline.value) : run.record.status}</div>
<div class="run-card-label">${run.headline ? run.headline.label.toLowerCase() : 'no validation accuracy'}${run.record.status !== 'succeeded' ? html` · <span class="badge run-${run.record.status}">${run.record.status}</span>` : ''}</div>
${diff.length ? html`<div class="run-card-params">${diff.map((d) => html`<code>${d}</code> `)}</div>` : ''}
</div>`;
  });

  return html`<header class="top">
<div class="eyebrow">tlpipe comparison report</div>
<h1>${names.join(', ')}</h1>
<p class="meta"><span>${runs.length} runs</span><span>${utcDate(starts[0]!)} – ${utcDate(starts[starts.length - 1]!)}</span></p>
</header>
<main>
<section class="run-cards">${cards}</section>
<section class="card"><h2>Comparison <small>parameters that differ, and every metric; ★ marks the best value</small></h2>${comparisonTable(runs, comparison)}</section>
${trained.length ? html`<section class="card"><h2>Training curves</h2>${trainingCurves(trained.map((v) => ({ run: v.record.id, label: runLabel(v), training: v.training!, colour: v.colour })))}</section>` : ''}
<h2 class="runs-title">Each run</h2>
${runs.map(
  (run) => html`<details class="run-details" style="--run:${run.colour}" data-run="${run.record.id}">
<summary><span class="swatch"></span><code>${run.record.id}</code> <span class="badge run-${run.record.status}">${run.record.status}</span> ${run.headline ? html`<b>${percent(run.headline.value)}</b> <span class="muted">${run.headline.label.toLowerCase()}</span>` : ''}</summary>
${runMeta(run.record)}
${problems(run.record)}
${runDetails(run, thumbnails, [])}
</details>`,
)}
</main>`;
}

/**
 * Counts, sizes and epochs have no better or worse: compareRuns ranks every
 * metric, but the report marks a best only where it means something.
 */
const isNeutral = (metric: string) => /(epoch|count|support|images|vectors|width|height|size|classes|train|validation)$/i.test(metric.split('.').pop() ?? metric);

function comparisonTable(runs: RunView[], c: ReturnType<typeof compareRuns>): Markup {
  const head = html`<tr><th></th>${runs.map((r) => html`<th style="--run:${r.colour}" scope="col" class="num"><span class="swatch"></span><code>${r.record.id}</code></th>`)}</tr>`;
  const params = c.params.length
    ? c.params.map((p) => html`<tr><th scope="row">${p.name}</th>${p.values.map((v) => html`<td class="num"><code>${paramValue(v)}</code></td>`)}</tr>`)
    : [html`<tr><th scope="row" class="muted">parameters</th><td colspan="${runs.length}" class="muted num">no parameter differs</td></tr>`];
  const row = (m: (typeof c.metrics)[number]) => {
    const best = isNeutral(m.name) ? null : m.best;
    const goal = isNeutral(m.name) ? '' : html` <span class="goal" title="${m.goal === 'max' ? 'higher is better' : 'lower is better'}">${m.goal === 'max' ? '↑' : '↓'}</span>`;
    return html`<tr><th scope="row">${m.name}${goal}</th>${m.values.map(
      (v, i) => html`<td class="num${i === best ? ' best' : ''}" data-metric="${m.name}">${v === null ? '–' : metricValue(m.name, v)}${i === best ? html` <span class="star" title="best">★</span>` : ''}</td>`,
    )}</tr>`;
  };
  // What differs between the runs first; what all runs share after, dimmed.
  const differ = c.metrics.filter((m) => new Set(m.values).size > 1);
  const same = c.metrics.filter((m) => new Set(m.values).size <= 1);
  return html`<div class="table-scroll"><table class="compare"><thead>${head}</thead>
<tbody class="params">${params}</tbody>
<tbody class="metric-rows">${differ.map(row)}</tbody>
</table></div>
${same.length ? html`<p class="same-metrics"><span>The same in every run:</span> ${same.map((m, i) => html`${i ? ' · ' : ''}<span class="same-metric" data-metric="${m.name}">${m.name} <b>${m.values[0] === null || m.values[0] === undefined ? '–' : metricValue(m.name, m.values[0])}</b></span>`)}</p>` : ''}`;
}
