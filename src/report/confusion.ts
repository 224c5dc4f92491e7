// The evaluation's tables: the confusion matrix as a heat map, and the
// per-class precision, recall and F1.
import type { ClassScores } from '../artifacts/evaluation.js';
import { percent } from './format.js';
import { html, type Markup } from './markup.js';

type Rgb = [number, number, number];
const PAPER: Rgb = [248, 250, 252];
const RIGHT: Rgb = [37, 99, 235];
const WRONG: Rgb = [220, 38, 38];

function mix(from: Rgb, to: Rgb, t: number): string {
  const c = from.map((f, i) => Math.round(f + (to[i]! - f) * t));
  return `rgb(${c.join(',')})`;
}

/** Past this many classes, cells show colour only; counts stay in tooltips and data-count. */
const DENSE_CLASSES = 16;
/** Past this many, cells shrink and column names turn vertical to fit. */
const COMPACT_CLASSES = 5;

/**
 * Colour is the share of the true class's images in the cell (its row), so a
 * rare class's mistakes stand out as much as a common one's: blue on the
 * diagonal (right), red off it (wrong).
 */
export function confusionMatrix(classes: string[], confusion: number[][], run: string): Markup {
  const dense = classes.length > DENSE_CLASSES;
  const size = dense ? ' dense' : classes.length > COMPACT_CLASSES ? ' compact' : '';
  const total = confusion.flat().reduce((a, b) => a + b, 0);
  const head = classes.map((c) => html`<th scope="col" class="cm-pred" title="${c}"><span>${c}</span></th>`);
  const rows = confusion.map((row, i) => {
    const support = row.reduce((a, b) => a + b, 0);
    const cells = row.map((count, j) => {
      const share = support ? count / support : 0;
      const strength = count ? 0.12 + 0.88 * share : 0;
      const background = mix(PAPER, i === j ? RIGHT : WRONG, strength);
      const ink = strength > 0.55 ? '#fff' : '#0f172a';
      const tip = `true ${classes[i]}, predicted ${classes[j]}: ${count} (${percent(share)} of ${classes[i]})`;
      return html`<td class="cm-cell${i === j ? ' cm-diag' : ''}" style="background:${background};color:${ink}" data-count="${count}" data-true="${classes[i]}" data-predicted="${classes[j]}" title="${tip}">${dense ? '' : count ? html`<b>${count}</b><small>${percent(share, 0)}</small>` : html`<span class="zero">0</span>`}</td>`;
    });
    return html`<tr><th scope="row" class="cm-true" title="${classes[i]}">${classes[i]}</th>${cells}<td class="cm-support">${support}</td></tr>`;
  });
  return html`<div class="cm-wrap"><table class="confusion${size}" data-run="${run}" data-total="${total}">
<caption>Rows: true class · columns: predicted class · colour: share of the true class</caption>
<thead><tr><th class="cm-corner">true \\ predicted</th>${head}<th class="cm-support">total</th></tr></thead>
<tbody>${rows}</tbody></table></div>`;
}

function scoreCell(v: number | null): Markup {
  if (v === null) return html`<td class="num">–</td>`;
  return html`<td class="num score">${percent(v)}<span class="track"><span style="width:${(Math.max(0, Math.min(1, v)) * 100).toFixed(1)}%"></span></span></td>`;
}

export function perClassTable(perClass: ClassScores[]): Markup {
  const worstF1 = Math.min(...perClass.map((c) => c.f1 ?? Infinity));
  const rows = perClass.map(
    (c) => html`<tr${perClass.length > 2 && c.f1 === worstF1 ? html` class="worst" title="lowest F1"` : ''}><th scope="row">${c.class}</th>${scoreCell(c.precision)}${scoreCell(c.recall)}${scoreCell(c.f1)}<td class="num">${c.support ?? '–'}</td></tr>`,
  );
  return html`<table class="per-class"><thead><tr><th>class</th><th class="num">precision</th><th class="num">recall</th><th class="num">F1</th><th class="num">support</th></tr></thead><tbody>${rows}</tbody></table>`;
}
