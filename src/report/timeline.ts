// The stage timeline: one bar per stage, its length the stage's duration,
// its colour what happened (ran, cached, failed, skipped). Stages may run
// concurrently and records keep no start times, so bars share one origin.
import type { StageOutcome } from '../runner/outcome.js';
import { formatDuration } from './format.js';
import { html, type Markup } from './markup.js';

const STATUS_LABEL: Record<StageOutcome['status'], string> = {
  ran: 'ran',
  cached: 'cached',
  pulled: 'pulled',
  failed: 'failed',
  skipped: 'skipped',
};

export function stageTimeline(stages: StageOutcome[], run: string): Markup {
  if (!stages.length) return html`<p class="empty">This run has no stages.</p>`;
  const longest = Math.max(1, ...stages.map((s) => s.durationMs));
  const counts = (['ran', 'cached', 'pulled', 'failed', 'skipped'] as const)
    .map((status) => ({ status, n: stages.filter((s) => s.status === status).length }))
    .filter((c) => c.n > 0);
  const rows = stages.map((s) => {
    // The longest bar leaves room for its label; a sliver stays visible for instant (cached, skipped) stages.
    const width = Math.max(0.6, (82 * s.durationMs) / longest);
    return html`<div class="tl-row" data-stage="${s.name}" data-status="${s.status}" data-run="${run}">
<div class="tl-name"><span class="tl-stage">${s.name}</span><span class="tl-uses">${s.uses}</span></div>
<div class="tl-track"><div class="tl-bar status-${s.status}" style="width:${width.toFixed(2)}%"></div><span class="tl-time">${s.status === 'skipped' ? '' : formatDuration(s.durationMs)}</span></div>
<div class="tl-status"><span class="pill status-${s.status}">${STATUS_LABEL[s.status]}</span></div>
${s.status === 'failed' || s.status === 'skipped' ? html`<div class="tl-reason">${(s.error ?? s.reason).split('\n')[0]}</div>` : ''}
</div>`;
  });
  return html`<div class="timeline">${rows}</div>
<p class="tl-summary">${counts.map((c, i) => html`${i ? ' · ' : ''}<span class="dot status-${c.status}"></span>${c.n} ${c.status}`)}</p>`;
}
