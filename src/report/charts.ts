// Line charts drawn as plain SVG, so the report renders the same in every
// browser and needs no script. Each data point is a <circle> carrying
// data-series / data-run / data-x / data-y, and a <title> as its tooltip.
import { html, type Markup, trusted } from './markup.js';

export interface Series {
  /** Kind of curve, e.g. `val-accuracy`; becomes data-series. */
  kind: string;
  run: string;
  label: string;
  colour: string;
  dashed: boolean;
  points: { x: number; y: number | null }[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  formatY: (v: number) => string;
  /** Bounds the axis never goes past (accuracy stays within 0..1). */
  clamp?: [number, number];
  /** What x is called in tooltips (default 'epoch'). */
  xName?: string;
  /** Tick and tooltip text of an x value (default: the number). */
  formatX?: (v: number) => string;
  /** Vertical guides, e.g. the best epoch. */
  markers?: { x: number; label: string; colour: string }[];
}

const WIDTH = 520;
const HEIGHT = 280;
const MARGIN = { top: 14, right: 18, bottom: 44, left: 58 };

/** 1, 2 or 5 times a power of ten: steps a reader can add up in their head. */
export function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

/** Axis bounds on whole steps around the data, and the ticks between them. */
export function niceAxis(min: number, max: number, count: number, clamp?: [number, number]): { min: number; max: number; ticks: number[] } {
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min, count);
  let lo = Math.floor(min / step + 1e-9) * step;
  let hi = Math.ceil(max / step - 1e-9) * step;
  if (clamp) {
    lo = Math.max(lo, clamp[0]);
    hi = Math.min(hi, clamp[1]);
  }
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step * 1e-6; t += step) ticks.push(Number(t.toPrecision(12)));
  return { min: lo, max: hi, ticks };
}

/** Whole-number ticks for epochs, at most about `count` of them. */
function integerTicks(min: number, max: number, count: number): number[] {
  const step = Math.max(1, niceStep(max - min, count));
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push(t);
  if (!ticks.includes(min)) ticks.unshift(min);
  return ticks;
}

const f1 = (v: number) => trusted(v.toFixed(1));

export function lineChart(options: LineChartOptions): Markup {
  const { series } = options;
  const points = series.flatMap((s) => s.points);
  const ys = points.map((p) => p.y).filter((y): y is number => y !== null);
  if (!ys.length) return html`<p class="empty">No data for this chart.</p>`;
  const xs = points.map((p) => p.x);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs, xMin + 1);
  const y = niceAxis(Math.min(...ys), Math.max(...ys), 5, options.clamp);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (v: number) => MARGIN.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const sy = (v: number) => MARGIN.top + (1 - (v - y.min) / (y.max - y.min)) * plotH;
  const bottom = MARGIN.top + plotH;

  const yGrid = y.ticks.map(
    (t) => html`<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${f1(sy(t))}" y2="${f1(sy(t))}"/>
<text class="tick" x="${MARGIN.left - 8}" y="${f1(sy(t) + 4)}" text-anchor="end">${options.formatY(t)}</text>`,
  );
  const xTicks = integerTicks(xMin, xMax, 8).map(
    (t) => html`<line class="axis" x1="${f1(sx(t))}" x2="${f1(sx(t))}" y1="${bottom}" y2="${bottom + 5}"/>
<text class="tick" x="${f1(sx(t))}" y="${bottom + 18}" text-anchor="middle">${options.formatX ? options.formatX(t) : t}</text>`,
  );
  const markers = (options.markers ?? []).map((m) => {
    // Near the right edge the label goes on the left of its line, so it stays inside the chart.
    const right = sx(m.x) > MARGIN.left + plotW * 0.7;
    return html`<g class="marker"><line x1="${f1(sx(m.x))}" x2="${f1(sx(m.x))}" y1="${MARGIN.top}" y2="${bottom}" stroke="${m.colour}"/>
<text x="${f1(sx(m.x) + (right ? -5 : 5))}" y="${bottom - 8}" fill="${m.colour}" text-anchor="${right ? 'end' : 'start'}">${m.label}</text></g>`;
  });

  // Many epochs: smaller dots, so the line stays readable.
  const radius = xMax - xMin > 40 ? 1.8 : xMax - xMin > 15 ? 2.4 : 3.2;
  const drawn = series.map((s) => {
    // A missing value (no validation split that epoch) breaks the line instead of bridging the gap.
    const segments: string[][] = [[]];
    for (const p of s.points) {
      if (p.y === null) segments.push([]);
      else segments[segments.length - 1]!.push(`${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
    }
    const lines = segments
      .filter((seg) => seg.length > 1)
      .map((seg) => html`<polyline points="${seg.join(' ')}" stroke="${s.colour}"${s.dashed ? trusted(' stroke-dasharray="5 4"') : ''}/>`);
    const circles = s.points
      .filter((p): p is { x: number; y: number } => p.y !== null)
      .map(
        (p) =>
          html`<circle cx="${f1(sx(p.x))}" cy="${f1(sy(p.y))}" r="${radius}" fill="${s.dashed ? '#fff' : s.colour}" stroke="${s.colour}" data-series="${s.kind}" data-run="${s.run}" data-x="${p.x}" data-y="${p.y}"><title>${s.label}, ${options.xName ?? 'epoch'} ${options.formatX ? options.formatX(p.x) : p.x}: ${options.formatY(p.y)}</title></circle>`,
      );
    return html`<g class="series" data-series="${s.kind}" data-run="${s.run}">${lines}${circles}</g>`;
  });

  return html`<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${options.title}">
<rect class="plot" x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}"/>
${yGrid}
<line class="axis" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${bottom}" y2="${bottom}"/>
${xTicks}
<text class="axis-label" x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 6}" text-anchor="middle">${options.xLabel}</text>
<text class="axis-label" transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${options.yLabel}</text>
${markers}
${drawn}
</svg>`;
}

/** Swatches naming each curve: a solid or dashed line segment, then the label. */
export function legend(items: { label: string; colour: string; dashed: boolean }[]): Markup {
  return html`<ul class="legend">${items.map(
    (i) =>
      html`<li><svg width="26" height="10" aria-hidden="true"><line x1="1" x2="25" y1="5" y2="5" stroke="${i.colour}" stroke-width="2.5"${i.dashed ? trusted(' stroke-dasharray="5 4"') : ''}/></svg>${i.label}</li>`,
  )}</ul>`;
}
