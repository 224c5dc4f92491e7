// The misclassified validation images, most confident mistakes first, each a
// thumbnail with its true and predicted label.
import path from 'node:path';
import { type Evaluation, MISTAKES_SHOWN, shownMistakes } from './data.js';
import { percent } from './format.js';
import { html, type Markup } from './markup.js';

/** `thumbnails` maps an image path to a data: URI; images without one get a placeholder. */
export function mistakeGallery(evaluation: Evaluation, thumbnails: Map<string, string>, run: string): Markup {
  const all = evaluation.misclassified.length;
  if (!all) return html`<p class="empty">No misclassified images were recorded.</p>`;
  const shown = shownMistakes(evaluation, MISTAKES_SHOWN);
  const cards = shown.map((m) => {
    const uri = thumbnails.get(m.path);
    // Only data: URIs: the page must not reach anything, not even the local disk.
    const image = uri?.startsWith('data:image/')
      ? html`<img src="${uri}" alt="${path.basename(m.path)}">`
      : html`<div class="no-image">image not available</div>`;
    return html`<figure class="mistake" data-run="${run}" title="${m.path}">
<div class="thumb">${image}</div>
<figcaption><div class="label-line"><span class="k">true</span><span class="true-label" title="${m.trueLabel}">${m.trueLabel}</span></div>
<div class="label-line"><span class="k">predicted</span><span class="pred-label" title="${m.predictedLabel}">${m.predictedLabel}</span></div>
<div class="conf"><span class="conf-bar"><span style="width:${((m.confidence ?? 0) * 100).toFixed(0)}%"></span></span>${percent(m.confidence, 0)}</div>
<div class="file">${m.id !== null ? m.id : path.basename(m.path)}</div></figcaption>
</figure>`;
  });
  return html`<p class="note">${all > shown.length ? `The ${shown.length} most confident of ${all} mistakes` : `${all} mistake${all === 1 ? '' : 's'}`}, most confident first: the true label, what the model predicted, and how sure it was.</p>
<div class="gallery">${cards}</div>`;
}
