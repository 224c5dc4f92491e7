// Training curves: loss and accuracy per epoch, training and validation.
// One run: colour tells training from validation. Several runs: colour tells
// the runs apart and a dashed line is training, a solid one validation.
import { legend, lineChart, type Series } from './charts.js';
import type { EpochPoint } from '../artifacts/head.js';
import type { Training } from './data.js';
import { decimal, percent } from './format.js';
import { html, type Markup } from './markup.js';

export const RUN_COLOURS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d', '#7c2d12'];
const TRAIN_COLOUR = '#2563eb';
const VAL_COLOUR = '#ea580c';

export const runColour = (index: number) => RUN_COLOURS[index % RUN_COLOURS.length]!;

export interface RunTraining {
  run: string;
  /** How the legend names the run when several are overlaid, e.g. its id and the parameters that differ. */
  label?: string;
  training: Training;
  colour: string;
}

type Metric = 'loss' | 'accuracy';

function seriesOf(runs: RunTraining[], metric: Metric): Series[] {
  const single = runs.length === 1;
  const out: Series[] = [];
  for (const { run, label, training, colour } of runs) {
    for (const split of ['train', 'val'] as const) {
      const key = `${split}${metric === 'loss' ? 'Loss' : 'Accuracy'}` as keyof EpochPoint;
      const points = training.history.map((e) => ({ x: e.epoch, y: e[key] }));
      if (points.every((p) => p.y === null)) continue;
      const splitName = split === 'train' ? 'training' : 'validation';
      out.push({
        kind: `${split}-${metric}`,
        run,
        label: single ? splitName : `${label ?? run} ${splitName}`,
        colour: single ? (split === 'train' ? TRAIN_COLOUR : VAL_COLOUR) : colour,
        dashed: split === 'train',
        points,
      });
    }
  }
  return out;
}

export function trainingCurves(runs: RunTraining[]): Markup {
  const withHistory = runs.filter((r) => r.training.history.length);
  if (!withHistory.length) return html`<p class="empty">The training stage recorded no epochs.</p>`;
  const single = withHistory.length === 1;
  const best = single ? withHistory[0]!.training.bestEpoch : null;
  const markers = best !== null ? [{ x: best, label: `best epoch ${best}`, colour: '#64748b' }] : [];
  const loss = seriesOf(withHistory, 'loss');
  const accuracy = seriesOf(withHistory, 'accuracy');
  const kinds = new Set([...loss, ...accuracy].map((s) => s.kind.split('-')[0]));
  const key = single
    ? [
        ...(kinds.has('train') ? [{ label: 'training', colour: TRAIN_COLOUR, dashed: true }] : []),
        ...(kinds.has('val') ? [{ label: 'validation', colour: VAL_COLOUR, dashed: false }] : []),
      ]
    : [
        ...withHistory.map((r) => ({ label: r.label ?? r.run, colour: r.colour, dashed: false })),
        ...(kinds.has('train') ? [{ label: 'training (dashed)', colour: '#475569', dashed: true }] : []),
        ...(kinds.has('val') ? [{ label: 'validation (solid)', colour: '#475569', dashed: false }] : []),
      ];
  return html`${legend(key)}
<div class="charts">
<figure class="chart-box"><figcaption>Loss</figcaption>${lineChart({ title: 'Loss per epoch', xLabel: 'epoch', yLabel: 'loss', series: loss, formatY: (v) => decimal(v, 3), markers })}</figure>
<figure class="chart-box"><figcaption>Accuracy</figcaption>${lineChart({ title: 'Accuracy per epoch', xLabel: 'epoch', yLabel: 'accuracy', series: accuracy, formatY: (v) => percent(v, v * 100 === Math.round(v * 100) ? 0 : 1), clamp: [0, 1], markers })}</figure>
</div>`;
}
