// The HTML report: its content checked as text, then opened in headless
// Chromium (no network, no console error, charts and confusion matrix as
// expected), with screenshots kept as test artifacts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import sharp from 'sharp';
import type { StageOutcome } from '../src/runner/outcome.js';
import { RUN_FORMAT, type RunRecord, RunRecords } from '../src/runner/runs.js';
import { openSession } from '../src/runner/run.js';
import type { Json } from '../src/runner/step.js';
import { defaultReportName, reportCommand, runReportDir, writeRunReport } from '../src/report/command.js';
import { renderReport } from '../src/report/html.js';
import { thumbnailsFor, writeReport } from '../src/report/write.js';
import { ThumbnailCache } from '../src/report/thumbnail-cache.js';
import { repoRoot } from './support/fixtures.js';
import { removeDir, tempDir } from './support/tmp.js';

const CHROMIUM = '/usr/bin/chromium';
const artifactsDir = path.resolve(process.env.TLPIPE_TEST_ARTIFACTS ?? path.join(repoRoot, 'test-artifacts'));
const SERIES = ['train-loss', 'val-loss', 'train-accuracy', 'val-accuracy'] as const;

// ── realistic run records ────────────────────────────────────────────────

interface RunShape {
  id: string;
  lr: number;
  classes: [string, string];
  /** Rows: true class; columns: predicted. */
  confusion: [[number, number], [number, number]];
  images: string[];
  /** Final training accuracy; the curves approach it. */
  reach: number;
}

function stage(name: string, uses: string, status: StageOutcome['status'], durationMs: number, extra: Partial<StageOutcome> = {}): StageOutcome {
  return { name, uses, status, fingerprint: `${name}-fingerprint`.padEnd(64, '0'), reason: status === 'cached' ? 'cached' : 'inputs changed', durationMs, metrics: {}, outputs: [], ...extra };
}

/** Curves shaped like real ones: a higher learning rate converges sooner, then overfits (validation loss turns up). */
function history(shape: RunShape, epochs = 5) {
  const fast = shape.lr >= 0.01;
  return Array.from({ length: epochs }, (_, i) => {
    const t = 1 - Math.exp(-(i + 1) * (fast ? 1.1 : 0.45));
    const overfit = (fast ? 0.006 : 0.004) * i * i;
    return {
      epoch: i + 1,
      trainLoss: +(0.69 - 0.52 * t).toFixed(4),
      trainAccuracy: +(0.55 + (shape.reach - 0.55) * t).toFixed(4),
      valLoss: +(0.7 - 0.45 * t + overfit).toFixed(4),
      valAccuracy: +(0.52 + (shape.reach - 0.05 - 0.52) * t - overfit / 4).toFixed(4),
      lr: shape.lr,
      seconds: 1.4 + i * 0.05,
    };
  });
}

function evaluation(shape: RunShape): { metrics: { [k: string]: Json }; value: Json } {
  const [[a, b], [c, d]] = shape.confusion;
  const count = a + b + c + d;
  const perClass = shape.classes.map((cls, i) => {
    const tp = i === 0 ? a : d;
    const predicted = i === 0 ? a + c : b + d;
    const support = i === 0 ? a + b : c + d;
    const precision = tp / predicted;
    const recall = tp / support;
    return { class: cls, precision, recall, f1: (2 * precision * recall) / (precision + recall), support };
  });
  // Mistakes: the images of each off-diagonal cell, as many as the cell counts (up to the images there are).
  const mistakes: Json[] = [];
  const cells: [number, number, number][] = [[0, 1, b], [1, 0, c]];
  let next = 0;
  for (const [t, p, n] of cells) {
    for (let k = 0; k < n && next < shape.images.length; k++, next++) {
      mistakes.push({ path: shape.images[next]!, id: `val/${shape.classes[t]}/${path.basename(shape.images[next]!)}`, trueLabel: shape.classes[t]!, predictedLabel: shape.classes[p]!, confidence: +(0.93 - 0.11 * next).toFixed(3) });
    }
  }
  return {
    metrics: { accuracy: (a + d) / count, loss: 0.31, macroF1: (perClass[0]!.f1 + perClass[1]!.f1) / 2, count },
    value: { classes: shape.classes, perClass, confusion: shape.confusion, misclassified: mistakes },
  };
}

function record(shape: RunShape, startedAt: string): RunRecord {
  const h = history(shape);
  const best = h.reduce((x, y) => (y.valLoss < x.valLoss ? y : x));
  const ev = evaluation(shape);
  return {
    format: RUN_FORMAT,
    id: shape.id,
    startedAt,
    finishedAt: new Date(Date.parse(startedAt) + 14_800).toISOString(),
    status: 'succeeded',
    pipeline: { name: 'catsdogs', file: 'pipelines/catsdogs.yaml', sha256: 'f'.repeat(64), extends: [] },
    params: { model: 'mobilenetv2-12', lr: shape.lr, epochs: 5, batchSize: 32, head: { hidden: [128], dropout: 0.2 }, data: 'data/catsdogs' },
    set: [`lr=${shape.lr}`],
    git: { commit: '4bfc228d32d3d64462234ceff89877dc276fc9a9', dirty: true },
    stages: [
      stage('dataset', 'images.dataset', 'cached', 41, { metrics: { images: 200, train: 160, validation: 40 } }),
      stage('features', 'features.extract', 'cached', 186, { metrics: { vectors: 200, width: 1280 } }),
      stage('train', 'head.train', 'ran', 7350, {
        value: { history: h, bestEpoch: best.epoch, classes: shape.classes } as unknown as Json,
        metrics: { bestEpoch: best.epoch, valAccuracy: best.valAccuracy, valLoss: best.valLoss, trainAccuracy: best.trainAccuracy, trainLoss: best.trainLoss },
      }),
      stage('evaluate', 'head.evaluate', 'ran', 612, ev),
      stage('export', 'model.export', 'ran', 2120, { outputs: ['out/catsdogs/model.onnx', 'out/catsdogs/labels.txt'] }),
    ],
    outputs: ['out/catsdogs/model.onnx', 'out/catsdogs/labels.txt'],
    warnings: [],
  };
}

/** Small photos-to-be: a coloured background and a shape, different per image. */
async function makeImages(dir: string, n: number): Promise<string[]> {
  const colours = ['#c08552', '#5b7db1', '#7f9c5a', '#b35c7a', '#d4a72c', '#4f9d9a'];
  const files: string[] = [];
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const file = path.join(dir, `img-${i}.jpg`);
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="240" height="180"><rect width="240" height="180" fill="${colours[i % colours.length]}"/><circle cx="${70 + i * 25}" cy="90" r="${40 + i * 4}" fill="#fff" opacity="0.75"/><rect x="140" y="${30 + i * 10}" width="60" height="50" fill="#222" opacity="0.5"/></svg>`;
    await sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toFile(file);
    files.push(file);
  }
  return files;
}

let dir: string;
let runA: RunRecord;
let runB: RunRecord;
const VALIDATION_COUNT = 40;

before(async () => {
  dir = await tempDir();
  const images = await makeImages(path.join(dir, 'images'), 5);
  // One image vanishes after the run: the report must show a placeholder for it.
  const gone = path.join(dir, 'images', 'deleted-since.jpg');
  runA = record({ id: '20261130-101500-a1b2c3', lr: 0.001, classes: ['cat', 'dog'], confusion: [[18, 2], [3, 17]], images: [...images.slice(0, 4), gone], reach: 0.93 }, '2026-11-30T10:15:00.000Z');
  runB = record({ id: '20261130-103200-d4e5f6', lr: 0.01, classes: ['cat', 'dog'], confusion: [[19, 1], [2, 18]], images: images.slice(2), reach: 0.97 }, '2026-11-30T10:32:00.000Z');
});

after(async () => {
  await removeDir(dir);
});

// ── the page as text ─────────────────────────────────────────────────────

const count = (text: string, needle: string) => text.split(needle).length - 1;
const circles = (page: string, series: string, run: string) => count(page, `data-series="${series}" data-run="${run}" data-x=`);
const confusionSum = (page: string, run: string) => {
  const table = page.slice(page.indexOf(`<table class="confusion" data-run="${run}"`));
  const cells = table.slice(0, table.indexOf('</table>')).matchAll(/data-count="(\d+)"/g);
  return [...cells].reduce((sum, m) => sum + Number(m[1]), 0);
};

describe('report page', () => {
  test('one run: headline, one point per epoch per curve, a confusion matrix summing to the validation count', () => {
    const page = renderReport([runA]);
    assert.match(page, /^<!DOCTYPE html>/);
    assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; img-src data:; style-src &#39;unsafe-inline&#39;">/);
    assert.match(page, /<div class="headline-value">87\.5%<\/div><div class="headline-label">Validation accuracy/);
    for (const s of SERIES) assert.equal(circles(page, s, runA.id), 5, s);
    assert.equal(confusionSum(page, runA.id), VALIDATION_COUNT);
    assert.match(page, /best epoch \d/);
    for (const text of ['catsdogs', runA.id, '4bfc228d32', 'uncommitted changes', '2026-11-30 10:15 UTC', 'images.dataset', 'mobilenetv2-12', '{&quot;hidden&quot;:[128],&quot;dropout&quot;:0.2}']) {
      assert.ok(page.includes(text), `the page shows ${text}`);
    }
    // Timeline: every stage, with its status.
    assert.equal(count(page, 'class="tl-row"'), 5);
    assert.equal(count(page, 'data-status="cached"'), 2);
    // Self-contained: nothing to fetch, nothing to run.
    assert.doesNotMatch(page, /<script|<link|@import|url\(/i);
    assert.doesNotMatch(page, /\s(src|href)="(?!data:)/);
  });

  test('an lbfgs run with weightDecay auto: the search, score against strength, the chosen one marked; no one-point curves', () => {
    const r = structuredClone(runA);
    const train = r.stages.find((s) => s.uses === 'head.train')!;
    const candidates = [1, 0.1, 0.01, 0.001, 0.0001].map((weightDecay, i) => ({ weightDecay, accuracy: [0.8, 0.9, 0.95, 0.925, 0.9][i]!, loss: [0.6, 0.3, 0.15, 0.2, 0.3][i]!, iterations: 10 + i, converged: true }));
    const point = { epoch: 1, trainLoss: 0.1, trainAccuracy: 0.97, valLoss: 0.15, valAccuracy: 0.95, lr: 0, seconds: 0.4 };
    train.value = {
      history: [point], bestEpoch: 1, classes: ['cat', 'dog'], optimizer: 'lbfgs', weightDecay: 0.01,
      regularization: { method: 'validation split', folds: null, criterion: 'held-out accuracy, then loss', candidates, chosen: 0.01 },
    } as unknown as Json;
    const page = renderReport([r]);
    assert.match(page, /<h2>Regularisation search/);
    assert.equal(circles(page, 'search-accuracy', ''), 5);
    assert.equal(circles(page, 'search-loss', ''), 5);
    assert.match(page, /chosen 0\.01/);
    assert.match(page, /<tr class="best"><td class="num">0\.01<\/td><td class="num">95(\.0)?%/);
    assert.match(page, /<b>λ = 0\.01<\/b>/);
    assert.doesNotMatch(page, /<h2>Training curves/);
    // Without a search there is no such section.
    assert.doesNotMatch(renderReport([runA]), /Regularisation search/);
  });

  test('every string from a record is escaped', () => {
    const evil = '<script>alert(1)</script>';
    const r = structuredClone(runA);
    r.pipeline.name = `cats"dogs<i>`;
    r.params.note = `</style><script>alert(2)</script>`;
    r.set = [`x=" onload="alert(3)`];
    const ev = r.stages.find((s) => s.uses === 'head.evaluate')! as unknown as { value: { classes: string[]; perClass: { class: string }[]; misclassified: { trueLabel: string; path: string }[] } };
    ev.value.classes[1] = evil;
    ev.value.perClass[1]!.class = evil;
    ev.value.misclassified[0]!.trueLabel = evil;
    ev.value.misclassified[0]!.path = `/tmp/"><img src=x onerror=alert(4)>.jpg`;
    r.stages[0]!.status = 'failed';
    r.stages[0]!.error = `bad <b>input</b> & "quotes"`;
    const page = renderReport([r], { thumbnails: new Map([[ev.value.misclassified[1]!.path, 'javascript:alert(5)']]) });
    assert.doesNotMatch(page, /<script|<img src=x|<\/style><script|<i>|<b>input/i);
    assert.ok(page.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(page.includes('cats&quot;dogs&lt;i&gt;'));
    assert.ok(page.includes('bad &lt;b&gt;input&lt;/b&gt; &amp; &quot;quotes&quot;'));
    assert.doesNotMatch(page, /javascript:/, 'a thumbnail that is not a data: image is not used');
  });

  test('a pipeline without training shows its parameters and timeline only', () => {
    const r = structuredClone(runA);
    r.stages = r.stages.filter((s) => !s.uses.startsWith('head.'));
    const page = renderReport([r]);
    assert.ok(page.includes('<h2>Parameters</h2>') && page.includes('<h2>Stage timeline</h2>'));
    assert.doesNotMatch(page, /class="chart"|class="confusion|class="gallery"|Validation accuracy/);
    assert.ok(page.includes('no validation accuracy recorded'));
  });

  test('a failed run shows why, and what did not run', () => {
    const r = structuredClone(runA);
    r.status = 'failed';
    const train = r.stages.find((s) => s.uses === 'head.train')!;
    Object.assign(train, { status: 'failed', error: 'step "head.train" failed unexpectedly: out of memory\n    at train (train.js:1:1)', value: undefined, metrics: {} });
    for (const s of r.stages.slice(3)) Object.assign(s, { status: 'skipped', reason: '"train" did not finish', durationMs: 0, value: undefined, metrics: {} });
    const page = renderReport([r]);
    assert.match(page, /role="alert"><h2>The run failed: 1 stage failed\.<\/h2>/);
    assert.ok(page.includes('out of memory\n    at train (train.js:1:1)'));
    assert.equal(count(page, 'data-status="skipped"'), 2);
    assert.ok(page.includes('&quot;train&quot; did not finish'));
    assert.doesNotMatch(page, /class="chart"/);
  });

  test('no validation split: the validation curves are left out, the training ones drawn', () => {
    const r = structuredClone(runA);
    const train = r.stages.find((s) => s.uses === 'head.train')! as unknown as { value: { history: { valLoss: number | null; valAccuracy: number | null }[] } };
    for (const e of train.value.history) Object.assign(e, { valLoss: null, valAccuracy: null });
    r.stages = r.stages.filter((s) => s.uses !== 'head.evaluate');
    const page = renderReport([r]);
    assert.equal(circles(page, 'train-loss', r.id), 5);
    assert.equal(circles(page, 'val-loss', r.id), 0);
    assert.equal(circles(page, 'val-accuracy', r.id), 0);
  });

  test('several runs: curves overlaid, one colour per run, and the comparison with the best marked', () => {
    const page = renderReport([runA, runB]);
    for (const run of [runA, runB]) for (const s of SERIES) assert.equal(circles(page, s, run.id), 5, `${run.id} ${s}`);
    assert.ok(page.includes('2 runs'));
    // lr differs, so the comparison lists it; epochs does not.
    const compare = page.slice(page.indexOf('<table class="compare">'), page.indexOf('</table>', page.indexOf('<table class="compare">')));
    assert.match(compare, /<tr><th scope="row">lr<\/th><td class="num"><code>0\.001<\/code><\/td><td class="num"><code>0\.01<\/code><\/td><\/tr>/);
    assert.doesNotMatch(compare, /<th scope="row">epochs<\/th>/);
    // Run B is better: 92.5% against 87.5%.
    const accuracyRow = /<th scope="row">evaluate\.accuracy [^]*?<\/tr>/.exec(compare)![0];
    assert.match(accuracyRow, /<td class="num" [^>]*>87\.50%<\/td><td class="num best" [^>]*>92\.50% <span class="star"/);
    assert.match(page, /class="run-card best"[^>]*data-run="20261130-103200-d4e5f6"/);
    assert.equal(confusionSum(page, runA.id), VALIDATION_COUNT);
    assert.equal(confusionSum(page, runB.id), VALIDATION_COUNT);
  });
});

// ── writing files and the commands ───────────────────────────────────────

describe('writing reports', () => {
  test('thumbnails embedded for the images that still exist, a placeholder for the one gone', async () => {
    const out = path.join(dir, 'reports', 'a.html');
    assert.equal(await writeReport([runA], out), out);
    const page = await readFile(out, 'utf8');
    assert.equal(count(page, '<img src="data:image/jpeg;base64,'), 4);
    assert.equal(count(page, 'image not available'), 1);
    assert.deepEqual(await readdir(path.dirname(out)), ['a.html'], 'no temporary file left behind');
    assert.ok(page.length < 400_000, `the report stays small (${page.length} bytes)`);
  });

  test('thumbnails are remembered by image stat: a rerun decodes none, an edited image gets a new one', async () => {
    const cache = new ThumbnailCache(path.join(dir, 'thumbnail-cache'));
    const first = await thumbnailsFor([runA], dir, cache);
    assert.equal(first.size, 4);
    assert.equal((await readdir(cache.dir)).filter((n) => n.endsWith('.bin')).length, 4);
    // Remembered thumbnails are served even where the decoder would now give other bytes: they are the cache's.
    for (const name of await readdir(cache.dir)) await writeFile(path.join(cache.dir, name), Buffer.from('remembered'));
    const second = await thumbnailsFor([runA], dir, cache);
    assert.deepEqual([...second.values()].map((u) => Buffer.from(u.split(',')[1]!, 'base64').toString()), Array(4).fill('remembered'));
    // An image changed since: its stat differs, so it is decoded again.
    const edited = String((runA.stages.find((s) => s.name === 'evaluate')!.value as { misclassified: { path: string }[] }).misclassified[0]!.path);
    await sharp({ create: { width: 50, height: 40, channels: 3, background: '#0a0' } }).jpeg().toFile(edited);
    const third = await thumbnailsFor([runA], dir, cache);
    assert.notEqual(third.get(edited), second.get(edited));
    assert.match(Buffer.from(third.get(edited)!.split(',')[1]!, 'base64').subarray(0, 2).toString('hex'), /^ffd8$/, 'a real JPEG again');
    cache.prune(2);
    assert.equal((await readdir(cache.dir)).filter((n) => n.endsWith('.bin')).length, 2);
  });

  test('tlpipe report RUN... reads runs from the cache and writes the file', async () => {
    const cache = path.join(dir, 'cache');
    const session = await openSession(cache);
    const records = new RunRecords(session.store);
    await records.save(runA);
    await records.save(runB);
    const out = path.join(dir, 'cmd', 'both.html');
    const code = await reportCommand({ args: ['last~1', runB.id.slice(0, 17)], values: { 'cache-dir': cache, out, json: true } });
    assert.equal(code, 0);
    const page = await readFile(out, 'utf8');
    assert.equal(circles(page, 'val-accuracy', runA.id), 5);
    assert.equal(circles(page, 'val-accuracy', runB.id), 5);
    await assert.rejects(reportCommand({ args: [], values: { 'cache-dir': cache } }), /Usage: tlpipe report RUN/);
    await assert.rejects(reportCommand({ args: ['last'], values: { 'cache-dir': cache, out: 'x.png' } }), /--out names the HTML file/);
    assert.equal(defaultReportName([runA]), `report-${runA.id}.html`);
    assert.equal(defaultReportName([runA, runB]), `report-${runA.id}-and-1-more.html`);
  });

  test('a run writes report.html beside its outputs, and a failure to write is only a warning', async () => {
    const project = path.join(dir, 'project');
    assert.equal(runReportDir(runA, project), path.join(project, 'out', 'catsdogs'));
    assert.equal(runReportDir({ ...runA, outputs: [] }, project), path.join(project, 'out'));
    assert.equal(runReportDir({ ...runA, outputs: ['model.onnx', 'out/x.txt'] }, project), path.join(project, 'out'));
    const lines: string[] = [];
    const file = await writeRunReport(runA, undefined, { projectDir: project, log: (l) => lines.push(l) });
    assert.equal(file, path.join(project, 'out', 'catsdogs', 'report.html'));
    assert.ok(existsSync(file!));
    assert.match(lines[0]!, /^report .*report\.html$/);
    await writeFile(path.join(dir, 'a-file'), '');
    const failed = await writeRunReport(runA, path.join(dir, 'a-file', 'sub'), { log: (l) => lines.push(l) });
    assert.equal(failed, undefined);
    assert.match(lines[1]!, /^warning: the run report could not be written/);
  });
});

// ── in a browser ─────────────────────────────────────────────────────────

const browserSkip = existsSync(CHROMIUM) ? false : `Chromium not installed at ${CHROMIUM}: apt-get install chromium`;

describe('report in headless Chromium', { skip: browserSkip }, () => {
  // One browser, on a profile of its own, for all these tests; a page each.
  let context: BrowserContext;
  let userData: string;
  before(async () => {
    const { chromium } = await import('playwright-core');
    userData = await tempDir();
    context = await chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
  });
  after(async () => {
    await context?.close();
    if (userData) await removeDir(userData);
  });

  /** Opens a report in a new page, records console errors, dialogs and requests, and saves a full-page screenshot. */
  async function openReport(file: string, screenshot: string) {
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('dialog', (d) => {
      errors.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    try {
      const url = pathToFileURL(file).href;
      await page.goto(url, { waitUntil: 'load' });
      const shoot = async (name: string) => {
        await mkdir(artifactsDir, { recursive: true });
        const options = { path: path.join(artifactsDir, name), fullPage: true };
        // A tall full-page capture now and then fails on a busy machine ("Unable to capture screenshot"); once more is enough.
        await page.screenshot(options).catch(() => page.screenshot(options));
      };
      await shoot(screenshot);
      return {
        page,
        errors,
        /** Requests other than the report itself and embedded data: URIs: there must be none. */
        outside: () => requests.filter((u) => u !== url && !u.startsWith('data:')),
        circleCount: (series: string, run: string) => page.locator(`svg.chart circle[data-series="${series}"][data-run="${run}"]`).count(),
        confusionTotal: (run: string) =>
          page.$$eval(`table.confusion[data-run="${run}"] td[data-count]`, (cells) => cells.reduce((sum, c) => sum + Number(c.getAttribute('data-count')), 0)),
        brokenImages: () => page.$$eval('img', (imgs) => imgs.filter((i) => !i.complete || i.naturalWidth === 0).length),
        screenshot: shoot,
        close: () => page.close(),
      };
    } catch (e) {
      await page.close();
      throw e;
    }
  }

  test('one run: no network, no console error, every point drawn, the matrix adds up', async () => {
    const file = path.join(artifactsDir, 'report-single-run.html');
    await writeReport([runA], file);
    const r = await openReport(file, 'report-single-run.png');
    try {
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.outside(), []);
      for (const s of SERIES) assert.equal(await r.circleCount(s, runA.id), 5, s);
      assert.equal(await r.confusionTotal(runA.id), VALIDATION_COUNT);
      assert.equal(await r.brokenImages(), 0);
      assert.equal(await r.page.locator('img[src^="data:image/jpeg"]').count(), 4);
      const chart = await r.page.locator('svg.chart').first().boundingBox();
      assert.ok(chart && chart.width > 300 && chart.height > 150, 'charts are drawn at a readable size');
      assert.equal((await r.page.locator('.headline-value').textContent())?.trim(), '87.5%');
    } finally {
      await r.close();
    }
  });

  test('several runs: overlaid curves and comparison render without errors', async () => {
    const file = path.join(artifactsDir, 'report-multi-run.html');
    await writeReport([runA, runB], file);
    const r = await openReport(file, 'report-multi-run.png');
    try {
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.outside(), []);
      for (const run of [runA, runB]) for (const s of SERIES) assert.equal(await r.circleCount(s, run.id), 5, `${run.id} ${s}`);
      assert.equal(await r.confusionTotal(runA.id), VALIDATION_COUNT);
      assert.equal(await r.confusionTotal(runB.id), VALIDATION_COUNT);
      assert.ok((await r.page.locator('table.compare td.best').count()) > 0);
      // A run's details, opened: its confusion matrix and mistakes render too.
      await r.page.locator(`details.run-details[data-run="${runB.id}"] > summary`).click();
      assert.ok(await r.page.locator(`table.confusion[data-run="${runB.id}"]`).isVisible());
      assert.equal(await r.brokenImages(), 0);
      await r.screenshot('report-multi-run-expanded.png');
      assert.deepEqual(r.errors, []);
    } finally {
      await r.close();
    }
  });

  test('a failed run renders its error', async () => {
    const failed = structuredClone(runA);
    failed.status = 'failed';
    const train = failed.stages.find((s) => s.uses === 'head.train')!;
    Object.assign(train, { status: 'failed', error: 'step "head.train" failed unexpectedly: the features file is truncated', value: undefined, metrics: {} });
    for (const s of failed.stages.slice(3)) Object.assign(s, { status: 'skipped', reason: '"train" did not finish', durationMs: 0, value: undefined, metrics: {} });
    const file = path.join(artifactsDir, 'report-failed-run.html');
    await writeReport([failed], file);
    const r = await openReport(file, 'report-failed-run.png');
    try {
      assert.deepEqual(r.errors, []);
      assert.ok(await r.page.getByRole('alert').getByText('the features file is truncated').isVisible());
    } finally {
      await r.close();
    }
  });

  test('hostile labels stay text: nothing runs, nothing is fetched', async () => {
    const r0 = structuredClone(runA);
    const ev = r0.stages.find((s) => s.uses === 'head.evaluate')! as unknown as { value: { classes: string[]; misclassified: { trueLabel: string }[] } };
    ev.value.classes[0] = '<img src=x onerror=alert(1)><script>alert(2)</script>';
    ev.value.misclassified[0]!.trueLabel = '"><svg onload=alert(3)>';
    r0.params.note = '</style><link rel=stylesheet href=http://example.invalid/x.css>';
    const file = path.join(dir, 'hostile.html');
    await writeReport([r0], file);
    const r = await openReport(file, 'report-hostile-labels.png');
    try {
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.outside(), []);
      assert.ok(await r.page.getByText('<img src=x onerror=alert(1)><script>alert(2)</script>').first().isVisible());
    } finally {
      await r.close();
    }
  });
});
