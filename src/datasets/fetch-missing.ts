// Before a run is planned: datasets that are not on disk yet but declare a
// source are fetched, with consent (see downloadConsent), a progress bar on
// a terminal and a line every 10 % elsewhere.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Pipeline } from '../runner/analyze.js';
import { ExitCode, TlpipeError, UsageError } from '../runner/errors.js';
import type { DatasetSource } from './source.js';

interface Missing {
  stage: string;
  root: string;
  source: DatasetSource;
}

/** Stages whose dataset folder is missing and can be fetched. */
export function missingSources(pipeline: Pipeline): Missing[] {
  const out: Missing[] = [];
  for (const stage of pipeline.stages) {
    const p = stage.params as { layout?: string; root?: string; source?: DatasetSource } | null;
    if (stage.uses !== 'images.dataset' || p?.layout !== 'auto' || !p.source || !p.root) continue;
    const root = path.resolve(pipeline.projectDir, p.root);
    if (!existsSync(root)) out.push({ stage: stage.name, root, source: p.source });
  }
  return out;
}

function progressBar(say: (s: string) => void, tty: boolean) {
  let lastTenth = -1;
  let lastDraw = 0;
  return (done: number, total: number | undefined) => {
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    if (tty) {
      const now = Date.now();
      if (now - lastDraw < 100 && done !== total) return;
      lastDraw = now;
      const frac = total ? done / total : 0;
      const bar = total ? `[${'#'.repeat(Math.round(frac * 30)).padEnd(30, '.')}] ${(frac * 100).toFixed(0)}% ` : '';
      process.stderr.write(`\r  download: ${bar}${mb(done)}${total ? ` of ${mb(total)}` : ''}   ${done === total ? '\n' : ''}`);
      return;
    }
    const tenth = total ? Math.floor((10 * done) / total) : -1;
    if (tenth !== lastTenth) {
      lastTenth = tenth;
      say(`  download: ${total ? `${tenth * 10}% ` : ''}${mb(done)}${total ? ` of ${mb(total)}` : ''}`);
    }
  };
}

export async function fetchMissingSources(
  pipeline: Pipeline,
  options: { download: boolean; signal?: AbortSignal; say: (s: string) => void },
): Promise<void> {
  const missing = missingSources(pipeline);
  if (!missing.length) return;
  // Loaded only when something is to be fetched: a run with its data on disk never needs them.
  const [{ downloadConsent, fetchSource }, { DownloadError }, { ExtractError }] = await Promise.all([
    import('./source.js'),
    import('./download.js'),
    import('./extract.js'),
  ]);
  for (const m of missing) {
    const interactive = !!process.stdin.isTTY && !!process.stderr.isTTY;
    const ci = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
    const consent = downloadConsent(m.source, path.relative(process.cwd(), m.root) || m.root, { flag: options.download, interactive, ci });
    if (consent.kind === 'refuse') throw new UsageError(`Stage "${m.stage}": ${consent.message}`);
    if (consent.kind === 'ask') {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(consent.question).finally(() => rl.close());
      if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError(`Stage "${m.stage}": not downloaded. Put the data at ${m.root}, or run again and answer y.`);
    }
    options.say(`${m.stage}: downloading ${m.source.url}`);
    try {
      await fetchSource(m.source, m.root, {
        signal: options.signal,
        onProgress: progressBar(options.say, !!process.stderr.isTTY && !process.env.CI),
        say: (line) => options.say(`${m.stage}: ${line}`),
      });
    } catch (e) {
      if (e instanceof DownloadError || e instanceof ExtractError) throw new TlpipeError(`Stage "${m.stage}": ${e.message}`, ExitCode.runFailed);
      throw e;
    }
  }
}
