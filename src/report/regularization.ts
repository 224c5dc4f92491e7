// The weightDecay 'auto' search of a run: held-out accuracy and loss against
// the regularisation strength (log scale), the chosen one marked, and the
// candidates as a table.
import { lineChart } from './charts.js';
import type { RegularizationSearchValue } from '../artifacts/head.js';
import { decimal, percent } from './format.js';
import { html, type Markup } from './markup.js';

const ACCURACY_COLOUR = '#ea580c';
const LOSS_COLOUR = '#2563eb';

/** 10^x as the strength it stands for: 1e-3, 0.01, 1. */
const strength = (x: number) => {
  const v = 10 ** x;
  return v >= 0.01 && v <= 100 ? String(Number(v.toPrecision(2))) : v.toExponential(0).replace('e-', 'e−');
};

export function regularizationSearch(search: RegularizationSearchValue): Markup {
  const points = (key: 'accuracy' | 'loss') => search.candidates.map((c) => ({ x: Math.log10(c.weightDecay), y: c[key] }));
  const where = search.method === 'k-fold' ? `${search.folds ?? 'k'}-fold cross-validation on the training split` : 'the validation split';
  const marker = [{ x: Math.log10(search.chosen), label: `chosen ${search.chosen}`, colour: '#64748b' }];
  const common = { xLabel: 'weight decay λ (log scale)', xName: 'λ', formatX: strength, markers: marker };
  const accuracy = lineChart({
    ...common,
    title: 'held-out accuracy against weight decay',
    yLabel: 'accuracy',
    series: [{ kind: 'search-accuracy', run: '', label: 'held-out accuracy', colour: ACCURACY_COLOUR, dashed: false, points: points('accuracy') }],
    formatY: (v) => percent(v),
    clamp: [0, 1],
  });
  const loss = lineChart({
    ...common,
    title: 'held-out loss against weight decay',
    yLabel: 'loss',
    series: [{ kind: 'search-loss', run: '', label: 'held-out loss', colour: LOSS_COLOUR, dashed: false, points: points('loss') }],
    formatY: (v) => decimal(v, 3),
  });
  const rows = search.candidates.map(
    (c) => html`<tr${c.weightDecay === search.chosen ? html` class="best"` : ''}><td class="num">${c.weightDecay}</td><td class="num">${percent(c.accuracy)}</td><td class="num">${c.loss === null ? '–' : decimal(c.loss, 4)}</td></tr>`,
  );
  const sub = search.subsample;
  const applied = sub
    ? html` The candidates were solved on a stratified subsample of ${sub.searchRows} of the ${sub.trainRows} training rows; the final fit on all of them used λ = ${Number(sub.applied.toPrecision(3))} (the same penalty on the summed loss).`
    : '';
  const e = search.earlyStopped;
  const stopped = e
    ? html` Early stopping (Adam, lr ${e.lr}, best epoch ${e.bestEpoch} by validation loss) reached ${percent(e.accuracy)}, loss ${decimal(e.loss, 4)}: <b>${e.kept ? 'the head is the early-stopped one' : 'the L2 path is kept'}</b>.`
    : '';
  return html`<p>Chosen by held-out accuracy (then loss) on ${where}: <b>λ = ${search.chosen}</b>.${applied}${stopped}</p>
<div class="two-col"><div>${accuracy}</div><div>${loss}</div></div>
<table class="kv search"><tr><th>weight decay</th><th>accuracy</th><th>loss</th></tr>${rows}</table>`;
}
