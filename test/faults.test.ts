// The fault suite: tlpipe never loses finished work, never corrupts its
// store, never returns a wrong cached answer, and never answers bad input
// with a stack trace. Each trial makes a fault from outside (a signal at a
// chosen moment, a flipped byte, a full disk, a hostile file) on a small real
// pipeline, then checks the outcome against an uninterrupted run, byte for
// byte. The table of trials is printed at the end; its last line is
//   faults: T trials, S survived, L lost
// Run alone: node --test dist/test/faults.test.js (FAULTS_SEED=n for other
// moments and bytes, FAULTS_KEEP=1 to keep the scratch folders).
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { nanFeaturesModel, writeDataCases, vectorModel } from './support/faults-data.js';
import { carryTrials, deviceTrials } from './support/faults-device.js';
import { floatClassifier } from './support/float-classifier.js';
import { quantizeModel } from '../src/onnx/quantize.js';
import {
  type CliRun,
  type KillSignal,
  Lost,
  type Moment,
  type Outputs,
  SkipTrial,
  type Summary,
  afterChunks,
  checkStore,
  chunkPayload,
  chunkRows,
  cli,
  cloneStore,
  entries,
  expectClean,
  expectConsistentStore,
  expectSameOutputs,
  fillUntil,
  finish,
  flipByte,
  formatTable,
  interrupt,
  leftovers,
  listChunkFiles,
  mountTmpfs,
  objectPath,
  onFileCreated,
  onLine,
  photoSet,
  pool,
  project,
  random,
  readOutputs,
  RUN_ENDED_AS_MOMENT_CAME,
  removeScratch,
  results,
  rethrowFirst,
  scratchDir,
  seedFor,
  serveFiles,
  sha256Hex,
  stackTraceIn,
  start,
  statuses,
  summaryOf,
  tally,
  trial,
  truncate,
} from './support/faults.js';
import { clusterTrials } from './support/cluster-faults.js';
import { fixture, needsFixtures } from './support/fixtures.js';
import { serveWithRanges } from './support/range-server.js';
import { buildZip } from './support/zip.js';
import { DownloadError } from '../src/datasets/download.js';
import { ExtractError } from '../src/datasets/extract.js';
import { fetchSource } from '../src/datasets/source.js';
import { chunkTamperTrial, pushKilledTrial, type RemoteSetup, serverStoppedTrial, type Tamper, tamperTrial, twoPushersTrial } from './support/remote-faults.js';
import { type S3Server, startS3Server } from './support/s3-server.js';

// The table is printed when the test process exits, so that it comes after
// every test's own report; the assertion on it is the last test below.
process.on('exit', () => {
  if (results.length) console.log(formatTable());
});
after(removeScratch);

const MOBILENET_SHA = 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f';
const EPOCHS = 200;
/** Stages after (and including) the head's training: what the later-stage trials recompute. */
const FROM_TRAIN = ['train', 'evaluate', 'predictions', 'model'];
const FROM_FEATURES = ['features', ...FROM_TRAIN];
/** Two trials at once: each is a child process doing real work on 2 cores. */
const PARALLEL = 2;
const RUN_BOUND_MS = 150_000;

/** The catsdogs pipeline on ~40 real photos, chunks of 8 images, long enough training to be hit. */
const runArgs = (data: string, ...extra: string[]) => [
  'run',
  'pipelines/catsdogs.yaml',
  '--json',
  '--set',
  `data=${data}`,
  '--set',
  'features.chunkSize=8',
  '--set',
  'features.batchSize=8',
  '--set',
  `epochs=${EPOCHS}`,
  // Adam's epochs make training long enough to be interrupted (lbfgs, the default, takes milliseconds on 40 photos).
  '--set',
  'optimizer=adam',
  ...extra,
];

interface Reference {
  data: string;
  dir: string;
  store: string;
  summary: Summary;
  outputs: Outputs;
  /** Images with features (train, validation and test). */
  images: number;
}

let referencePromise: Promise<Reference> | undefined;
/** One uninterrupted run on a fresh store: the answer every other run must reproduce byte for byte. */
function reference(): Promise<Reference> {
  referencePromise ??= (async () => {
    const data = await photoSet(20, 6);
    const dir = await project();
    const r = await cli(runArgs(data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
    expectClean(r, 0, 'the reference run');
    const summary = summaryOf(r);
    assert.ok(summary.stages.every((s) => s.status === 'ran'), JSON.stringify(statuses(summary)));
    const outputs = await readOutputs(dir, summary);
    assert.match(outputs.csv, /^id,label\n(\d+,[01]\n){6}$/);
    return { data, dir, store: path.join(dir, '.tlpipe'), summary, outputs, images: Number(summary.metrics.features!.images) };
  })();
  return referencePromise;
}

/** A project whose store is the reference's, less the artifacts of `drop`. */
async function projectFromReference(drop: string[], options: { dropChunks?: boolean } = {}): Promise<{ dir: string; store: string; ref: Reference }> {
  const ref = await reference();
  const dir = await project();
  const store = path.join(dir, '.tlpipe');
  await cloneStore(ref.store, store, drop, options);
  return { dir, store, ref };
}

const ranStages = (s: Summary) => s.stages.filter((x) => x.status === 'ran').map((x) => x.name);
const doneBefore = (r: CliRun) => [...r.stderr.matchAll(/^✔ (\w+): done in/gm)].map((m) => m[1]!);

// ── interruption ─────────────────────────────────────────────────────────

type Kind = 'feature extraction' | 'training' | 'artifact write' | 'CSV write' | 'model write' | 'report write';

/**
 * `twice`: the signal again a seeded few milliseconds later (Ctrl-C, Ctrl-C:
 * stop at once). A moment right before the run's end (the report's rename) can
 * come as the run exits by itself: then the signal interrupted nothing, and
 * the trial is made again at another seeded moment (up to 3 attempts).
 */
async function interruptionTrial(kind: Kind, signal: KillSignal, twice = false): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const result = await interruptionAttempt(kind, signal, twice, attempt);
    if (result !== undefined) return attempt > 1 ? `${result} (attempt ${attempt}: the earlier ones ended as the moment came)` : result;
    if (attempt === 3) throw new Error(`${kind}, ${signal}: three times the run ended by itself as the moment came`);
  }
}

async function interruptionAttempt(kind: Kind, signal: KillSignal, twice: boolean, attempt: number): Promise<string | undefined> {
  const rng = random(seedFor(`interrupt ${kind} ${signal}${attempt > 1 ? ` attempt ${attempt}` : ''}`));
  const { dir, store, ref } = await projectFromReference(kind === 'feature extraction' ? FROM_FEATURES : FROM_TRAIN, {
    dropChunks: kind === 'feature extraction',
  });
  const outDir = path.join(dir, 'out', 'catsdogs');
  await fs.mkdir(outDir, { recursive: true });
  const stillThere = (folder: string) => async (seen: string) =>
    (await fs.stat(path.join(folder, seen)).then(() => true, () => false)) ? 'caught mid-write (temp file not yet renamed)' : 'right after the rename';

  let moment: Moment;
  let inspect: ((seen: string) => Promise<string>) | undefined;
  switch (kind) {
    case 'feature extraction':
      moment = afterChunks(store, rng.int(1, 4));
      break;
    case 'training': {
      const epoch = rng.int(5, EPOCHS - 50);
      moment = onLine(new RegExp(`train: epoch ${epoch}/${EPOCHS}:`), `at epoch ${epoch}/${EPOCHS}`);
      break;
    }
    case 'artifact write': {
      const nth = rng.int(1, 4);
      moment = onFileCreated(path.join(store, 'tmp'), (n) => /^\d+-w-/.test(n), nth, `at the store's atomic write no. ${nth}`);
      inspect = stillThere(path.join(store, 'tmp'));
      break;
    }
    case 'CSV write':
      moment = onFileCreated(outDir, (n) => n.startsWith('submission.csv.tlpipe-tmp-'), 1, 'as submission.csv is published');
      inspect = stillThere(outDir);
      break;
    case 'model write':
      moment = onFileCreated(outDir, (n) => n.startsWith('model.onnx.tlpipe-tmp-'), 1, 'as model.onnx is published');
      inspect = stillThere(outDir);
      break;
    case 'report write':
      moment = onFileCreated(outDir, (n) => n.startsWith('.report.html.'), 1, 'as report.html is written');
      inspect = stillThere(outDir);
      break;
  }

  const child = start(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
  const { seen, note, hit } = await interrupt(child, moment, signal, inspect);
  if (twice) {
    await new Promise((r) => setTimeout(r, rng.int(0, 100)));
    try {
      process.kill(child.pid!, signal);
    } catch {
      // Already gone.
    }
  }
  const killed = await finish(child);
  if (!hit && note === RUN_ENDED_AS_MOMENT_CAME && killed.code === 0) return undefined;
  if (!hit) throw new Error(`${moment.label}: ${note} (exit ${killed.code ?? killed.signal})`);
  if (signal === 'SIGKILL') assert.equal(killed.signal, 'SIGKILL', `expected death by SIGKILL, got exit ${killed.code}`);
  else if (twice) {
    // Stopped at once: by the signal itself, or with its exit code if the first one had already finished the job.
    const code = signal === 'SIGINT' ? 130 : 143;
    if (!(killed.signal === signal || killed.code === code)) throw new Error(`stopped by ${killed.signal ?? `exit ${killed.code}`}, expected ${signal} or exit ${code}\n${killed.stderr.slice(-800)}`);
    const trace = /terminate called|Napi::Error/.exec(killed.stderr)?.[0] ?? (killed.stderr.includes('Internal error') ? 'Internal error' : undefined);
    if (trace) throw new Error(`a crash on the second ${signal}: ${trace}`);
  } else {
    expectClean(killed, signal === 'SIGINT' ? 130 : 143, `the run stopped by ${signal}`);
    assert.match(killed.stderr, /Interrupted\. Finished stages and committed chunks are kept; resume with:/);
  }
  const done = doneBefore(killed);
  const rowsKept = await chunkRows(store);
  // Right after the interruption the store holds old and new state only, never a torn one.
  const torn = (await checkStore(store)).filter((p) => !p.startsWith('tmp/'));
  if (torn.length) throw new Lost(`store inconsistent right after the ${signal}: ${torn.join('; ')}`);

  const rerun = await cli(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
  expectClean(rerun, 0, 'the rerun');
  const summary = summaryOf(rerun);
  const st = statuses(summary);
  for (const stage of done) if (st[stage] !== 'cached') throw new Lost(`"${stage}" had finished before the ${signal} but ran again`);
  if (st.features === 'ran') {
    const computed = Number(summary.metrics.features?.computed);
    if (computed > ref.images - rowsKept) throw new Lost(`features: ${computed} images computed again, though ${rowsKept} of ${ref.images} were committed`);
  }
  expectSameOutputs(await readOutputs(dir, summary), ref.outputs, 'the resumed run');
  const left = await leftovers(dir, store);
  if (left.length) throw new Error(`temp files remain after the rerun: ${left.join(', ')}`);
  await expectConsistentStore(store, 'after the rerun');
  const how = signal === 'SIGKILL' ? 'killed' : killed.signal ? `died of ${killed.signal}` : `exit ${killed.code}`;
  return `${moment.label} (${seen}${note ? `, ${note}` : ''}): ${how}, ${done.length} stage(s) and ${rowsKept} feature rows kept; rerun ran ${ranStages(summary).join(',') || 'nothing'}; outputs identical`;
}

describe('interruption: SIGKILL, SIGTERM and SIGINT at seeded moments', { skip: needsFixtures }, () => {
  test('the reference run (uninterrupted)', { timeout: RUN_BOUND_MS + 10_000 }, async () => {
    await trial('reference', 'uninterrupted run, fresh store', async () => {
      const ref = await reference();
      return `${ref.images} images, ${EPOCHS} epochs; submission ${sha256Hex(ref.outputs.csv).slice(0, 12)}, model ${ref.outputs.model.slice(0, 12)}`;
    });
  });

  test('every stage kind × every signal: the rerun completes with identical outputs and no temp files', { timeout: 600_000 }, async () => {
    const kinds: Kind[] = ['feature extraction', 'training', 'artifact write', 'CSV write'];
    const cases: [Kind, KillSignal, boolean][] = [
      ...kinds.flatMap((k) => (['SIGKILL', 'SIGTERM', 'SIGINT'] as const).map((s): [Kind, KillSignal, boolean] => [k, s, false])),
      ['model write', 'SIGKILL', false],
      ['report write', 'SIGKILL', false],
      ['feature extraction', 'SIGINT', true],
      ['feature extraction', 'SIGTERM', true],
    ];
    rethrowFirst(
      await pool(cases, PARALLEL, ([kind, signal, twice]) =>
        trial('interruption', twice ? `${signal} twice (stop at once) during ${kind}` : `${signal} during ${kind}`, () => interruptionTrial(kind, signal, twice)),
      ),
    );
  });
});

// ── corruption ───────────────────────────────────────────────────────────

/** Reruns on a damaged store: the damage must be reported, the stage recomputed, the outputs identical. */
async function rerunAfterDamage(dir: string, store: string, ref: Reference, stage: string, warning: RegExp): Promise<Summary> {
  const r = await cli(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
  expectClean(r, 0, 'the run on the damaged store');
  const summary = summaryOf(r);
  expectSameOutputs(await readOutputs(dir, summary), ref.outputs, 'the run on the damaged store');
  if (statuses(summary)[stage] !== 'ran') throw new Lost(`the damaged artifact of "${stage}" was used (status ${statuses(summary)[stage]})`);
  if (!summary.warnings.some((w) => warning.test(w))) throw new Error(`no warning matching ${warning}: ${JSON.stringify(summary.warnings)}`);
  await expectConsistentStore(store, 'after the rerun');
  return summary;
}

const STAGES_WITH_FILES = ['dataset', 'backbone', 'transform', 'freeze', 'features', 'head', 'train', 'predictions', 'model'];

async function objectTrial(stage: string, how: 'flip' | 'truncate'): Promise<string> {
  const rng = random(seedFor(`object ${stage} ${how}`));
  const { dir, store, ref } = await projectFromReference([]);
  const stored = (await entries(store)).find((e) => e.entry.stage === stage && ref.summary.stages.some((s) => s.fingerprint === e.fingerprint));
  assert.ok(stored, `no artifact of ${stage}`);
  const [name, file] = rng.pick(Object.entries(stored.entry.files));
  const object = objectPath(store, file.sha256);
  const what = how === 'flip' ? `byte ${await flipByte(object, rng)} of ${file.size} flipped` : `cut to ${await truncate(object, rng)} of ${file.size} bytes`;
  await rerunAfterDamage(dir, store, ref, stage, how === 'flip' ? /does not match its hash/ : /bytes instead of/);
  return `objects/ file "${name}" of ${stage}: ${what}; detected, recomputed, outputs identical`;
}

async function entryTrial(stage: string, how: 'flip' | 'truncate'): Promise<string> {
  const rng = random(seedFor(`entry ${stage} ${how}`));
  const { dir, store, ref } = await projectFromReference([]);
  const stored = (await entries(store)).find((e) => e.entry.stage === stage && ref.summary.stages.some((s) => s.fingerprint === e.fingerprint))!;
  const before = await fs.readFile(stored.file, 'utf8');
  const what = how === 'flip' ? `byte ${await flipByte(stored.file, rng)} flipped` : `cut to ${await truncate(stored.file, rng)} of ${before.length} bytes`;
  // A flip can leave the same JSON (an exponent's e → E): then the entry is still right, and may be used.
  let same = false;
  try {
    same = JSON.stringify(JSON.parse(await fs.readFile(stored.file, 'utf8'))) === JSON.stringify(JSON.parse(before));
  } catch {
    same = false;
  }
  if (same) {
    const r = await cli(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
    expectClean(r, 0, 'the run');
    expectSameOutputs(await readOutputs(dir, summaryOf(r)), ref.outputs, 'the run');
    return `artifacts/ entry of ${stage}: ${what}, which left the same JSON; outputs identical`;
  }
  await rerunAfterDamage(dir, store, ref, stage, /Cached artifact [0-9a-f]{12} is corrupt/);
  return `artifacts/ entry of ${stage}: ${what}; detected, recomputed, outputs identical`;
}

/** The damage a checksum must catch: a metric's digit changed, the JSON still valid. */
async function entryMetricTrial(): Promise<string> {
  const { dir, store, ref } = await projectFromReference([]);
  const stored = (await entries(store)).find((e) => e.entry.stage === 'evaluate' && ref.summary.stages.some((s) => s.fingerprint === e.fingerprint))!;
  const text = await fs.readFile(stored.file, 'utf8');
  const m = /"loss": 0\.(\d)/.exec(text);
  assert.ok(m, 'the evaluate entry has a loss');
  const digit = m[1] === '9' ? '8' : String(Number(m[1]) + 1);
  await fs.chmod(stored.file, 0o644);
  await fs.writeFile(stored.file, text.replace(m[0], `"loss": 0.${digit}`));
  await rerunAfterDamage(dir, store, ref, 'evaluate', /Cached artifact [0-9a-f]{12} is corrupt/);
  return `artifacts/ entry of evaluate: loss 0.${m[1]}… → 0.${digit}… (valid JSON); caught by the entry checksum, recomputed, metrics identical`;
}

/** A new artifact whose file equals a damaged object already in the store must not adopt the damage. */
async function sharedObjectTrial(stage: 'predictions' | 'model'): Promise<string> {
  const rng = random(seedFor(`shared object ${stage}`));
  const { dir, store, ref } = await projectFromReference([]);
  const stored = (await entries(store)).find((e) => e.entry.stage === stage && ref.summary.stages.some((s) => s.fingerprint === e.fingerprint))!;
  const file = Object.values(stored.entry.files)[0]!;
  const at = await flipByte(objectPath(store, file.sha256), rng);
  // Another output folder: the stage has a new fingerprint but writes the same bytes.
  const r = await cli(runArgs(ref.data, '--set', 'out=out/again'), { cwd: dir, timeoutMs: RUN_BOUND_MS });
  expectClean(r, 0, 'the run with another output folder');
  const summary = summaryOf(r);
  if (statuses(summary)[stage] !== 'ran') throw new Error(`"${stage}" did not run under its new fingerprint`);
  expectSameOutputs(await readOutputs(dir, summary, 'out/again'), ref.outputs, 'the outputs published from the shared object');
  await expectConsistentStore(store, 'after the run');
  return `objects/ file of ${stage} damaged (byte ${at}); a new ${stage} artifact with the same bytes replaced it instead of adopting it; outputs identical`;
}

/** A published output damaged or deleted by hand: a cached run puts the right bytes back. */
async function publishedOutputTrial(): Promise<string> {
  const rng = random(seedFor('published outputs'));
  const { dir, ref } = await projectFromReference([]);
  const out = path.join(dir, 'out', 'catsdogs');
  await fs.mkdir(out, { recursive: true });
  await fs.writeFile(path.join(out, 'submission.csv'), ref.outputs.csv.replace(/,([01])\n/, (_, l: string) => `,${1 - Number(l)}\n`));
  await fs.writeFile(path.join(out, 'model.onnx'), (await fs.readFile(fixture('models', 'mobilenetv2-12-int8.onnx'))).subarray(0, rng.int(1, 100_000)));
  const r = await cli(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
  expectClean(r, 0, 'the cached run');
  const summary = summaryOf(r);
  if (summary.stages.some((s) => s.status !== 'cached')) throw new Error(`not every stage was cached: ${JSON.stringify(statuses(summary))}`);
  expectSameOutputs(await readOutputs(dir, summary), ref.outputs, 'the restored outputs');
  return 'submission.csv edited and model.onnx truncated by hand: a fully cached run restored both from the store';
}

async function chunkTrial(how: 'flip header' | 'flip payload' | 'truncate'): Promise<string> {
  const rng = random(seedFor(`chunk ${how}`));
  const { dir, store, ref } = await projectFromReference(FROM_FEATURES);
  const chunks = await listChunkFiles(store);
  const file = rng.pick(chunks);
  const rows = chunkPayload(await fs.readFile(file))!.readUInt32LE(0);
  const what =
    how === 'truncate'
      ? `cut to ${await truncate(file, rng)} bytes`
      : `byte ${await flipByte(file, rng, how === 'flip header' ? [0, 47] : [48, Number.MAX_SAFE_INTEGER])} flipped`;
  const summary = await rerunAfterDamage(dir, store, ref, 'features', /saved chunk of work .* is corrupt/);
  const computed = Number(summary.metrics.features?.computed);
  if (computed !== rows) throw new Lost(`features: ${computed} images recomputed; only the damaged chunk's ${rows} should be`);
  return `chunk ${path.basename(file)} (${rows} rows of ${chunks.length} chunks): ${what}; discarded with a warning, ${computed} images recomputed, outputs identical`;
}

async function runRecordTrial(how: 'flip' | 'truncate'): Promise<string> {
  const rng = random(seedFor(`run record ${how}`));
  const { dir, store, ref } = await projectFromReference([]);
  const file = path.join(store, 'runs', `${ref.summary.runId}.json`);
  const before = await fs.readFile(file, 'utf8');
  const what = how === 'flip' ? `byte ${await flipByte(file, rng)} flipped` : `cut to ${await truncate(file, rng)} of ${before.length} bytes`;
  let same = false;
  try {
    same = JSON.stringify(JSON.parse(await fs.readFile(file, 'utf8'))) === JSON.stringify(JSON.parse(before));
  } catch {
    same = false;
  }
  const list = await cli(['runs', '--json'], { cwd: dir, timeoutMs: 60_000 });
  expectClean(list, 0, 'tlpipe runs');
  const listed = (JSON.parse(list.stdout) as { runId: string }[]).some((r) => r.runId === ref.summary.runId);
  if (same) return `runs/ record: ${what}, which left the same JSON; listed unchanged`;
  if (listed) throw new Lost(`the damaged run record was listed as if intact`);
  if (!/Run record .* is unreadable/.test(list.stderr)) throw new Error(`no warning about the damaged record: ${list.stderr}`);
  const show = await cli(['show', ref.summary.runId], { cwd: dir, timeoutMs: 60_000 });
  expectClean(show, 64, 'tlpipe show of the damaged record');
  // A new run still works and is recorded.
  const again = await cli(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
  expectClean(again, 0, 'a new run');
  expectSameOutputs(await readOutputs(dir, summaryOf(again)), ref.outputs, 'a new run');
  const shown = await cli(['show', 'last'], { cwd: dir, timeoutMs: 60_000 });
  expectClean(shown, 0, 'tlpipe show last');
  return `runs/ record: ${what}; reported and ignored by runs/show (exit 64 for it), a new run recorded`;
}

async function downloadedModelTrial(how: 'flip' | 'truncate'): Promise<string> {
  const rng = random(seedFor(`downloaded model ${how}`));
  const model = await fs.readFile(fixture('models', 'mobilenetv2-12-int8.onnx'));
  const server = await serveFiles({ '/zoo/mobilenetv2-12-int8.onnx': model });
  try {
    const ref = await reference();
    const xdg = await scratchDir('xdg');
    const dir = await project();
    const args = (store: string) => [
      'run',
      'pipelines/catsdogs.yaml',
      '--only',
      'backbone',
      '--json',
      '--cache-dir',
      store,
      '--set',
      `data=${ref.data}`,
      '--set',
      `backbone=${server.url('/zoo/mobilenetv2-12-int8.onnx')}`,
      '--set',
      `backbone.sha256=${MOBILENET_SHA}`,
    ];
    const env = { XDG_CACHE_HOME: xdg, TLPIPE_MODELS: '' };
    const first = await cli(args(path.join(dir, 'store-1')), { cwd: dir, env, timeoutMs: 60_000 });
    expectClean(first, 0, 'the first run (download)');
    const cached = path.join(xdg, 'tlpipe', 'models', `${MOBILENET_SHA}.onnx`);
    assert.equal(sha256Hex(await fs.readFile(cached)), MOBILENET_SHA);
    const what = how === 'flip' ? `byte ${await flipByte(cached, rng)} flipped` : `cut to ${await truncate(cached, rng)} bytes`;
    const store = path.join(dir, 'store-2');
    const second = await cli(args(store), { cwd: dir, env, timeoutMs: 60_000 });
    expectClean(second, 0, 'the run with the damaged cached model');
    if (!/cached model .* is corrupt \(sha256 mismatch\); it is downloaded again/.test(second.stderr)) throw new Error(`no warning: ${second.stderr}`);
    const hits = server.hits.get('/zoo/mobilenetv2-12-int8.onnx') ?? 0;
    if (hits !== 2) throw new Error(`${hits} downloads, expected 2 (the first, then the re-download)`);
    const backbone = (await entries(store)).find((e) => e.entry.stage === 'backbone')!;
    if (backbone.entry.files['model.onnx']!.sha256 !== MOBILENET_SHA) throw new Lost('the damaged model was used by the backbone stage');
    if (sha256Hex(await fs.readFile(cached)) !== MOBILENET_SHA) throw new Lost('the user cache still holds the damaged model');
    await expectConsistentStore(store, 'after the re-download');
    return `~/.cache/tlpipe/models file: ${what}; warned, downloaded again (2 requests), the stage used the verified file`;
  } finally {
    await server.close();
  }
}

describe('corruption: damaged artifacts, entries, chunks, run records and downloaded models', { skip: needsFixtures }, () => {
  test('each damage is detected on use, warned about, recomputed, and never used', { timeout: 600_000 }, async () => {
    const rng = random(seedFor('corruption stages'));
    const shuffled = [...STAGES_WITH_FILES].sort(() => rng.next() - 0.5);
    const flipStages = shuffled.slice(0, 5);
    const cutStages = shuffled.slice(5);
    const entryStages = [...STAGES_WITH_FILES, 'evaluate'].sort(() => rng.next() - 0.5).slice(0, 4);
    const cases: [string, () => Promise<string>][] = [
      ...flipStages.map((s): [string, () => Promise<string>] => [`object of ${s}: byte flipped`, () => objectTrial(s, 'flip')]),
      ...cutStages.map((s): [string, () => Promise<string>] => [`object of ${s}: truncated`, () => objectTrial(s, 'truncate')]),
      ...entryStages.slice(0, 3).map((s): [string, () => Promise<string>] => [`entry of ${s}: byte flipped`, () => entryTrial(s, 'flip')]),
      [`entry of ${entryStages[3]}: truncated`, () => entryTrial(entryStages[3]!, 'truncate')],
      ['entry of evaluate: a metric digit changed', () => entryMetricTrial()],
      ['damaged CSV object shared by a new artifact', () => sharedObjectTrial('predictions')],
      ['damaged model object shared by a new artifact', () => sharedObjectTrial('model')],
      ['published outputs edited by hand', () => publishedOutputTrial()],
      ['feature chunk: header byte flipped', () => chunkTrial('flip header')],
      ['feature chunk: payload byte flipped', () => chunkTrial('flip payload')],
      ['feature chunk: truncated', () => chunkTrial('truncate')],
      ['run record: byte flipped', () => runRecordTrial('flip')],
      ['run record: truncated', () => runRecordTrial('truncate')],
      ['downloaded model: byte flipped', () => downloadedModelTrial('flip')],
      ['downloaded model: truncated', () => downloadedModelTrial('truncate')],
    ];
    rethrowFirst(await pool(cases, PARALLEL, ([name, body]) => trial('corruption', name, body)));
  });
});

// ── concurrency ──────────────────────────────────────────────────────────

describe('concurrency: several runs of one pipeline on one store', { skip: needsFixtures }, () => {
  test('three identical runs at once: all correct, each stage computed once, the store consistent', { timeout: 300_000 }, async () => {
    await trial('concurrency', '3 identical runs at once, fresh store', async () => {
      const ref = await reference();
      const dir = await project();
      const children = [0, 1, 2].map(() => start(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS * 2 }));
      const runs = await Promise.all(children.map((c) => finish(c)));
      runs.forEach((r, i) => expectClean(r, 0, `run ${i + 1}`));
      const summaries = runs.map(summaryOf);
      for (const s of summaries) expectSameOutputs(await readOutputs(dir, s), ref.outputs, `run ${s.runId}`);
      const store = path.join(dir, '.tlpipe');
      const twice = ref.summary.stages.map((x) => x.name).filter((name) => summaries.filter((s) => statuses(s)[name] === 'ran').length !== 1);
      if (twice.length) throw new Error(`stages not computed exactly once across the runs: ${twice.join(', ')}`);
      const chunks = (await listChunkFiles(store)).length;
      const expectedChunks = Math.ceil(ref.images / 8);
      if (chunks !== expectedChunks) throw new Error(`${chunks} feature chunks, expected ${expectedChunks}: work done twice`);
      await expectConsistentStore(store, 'after the concurrent runs');
      const left = await leftovers(dir, store);
      if (left.length) throw new Error(`temp files remain: ${left.join(', ')}`);
      return `each of the ${ref.summary.stages.length} stages ran in exactly one run; ${chunks} chunks (no duplicate work); outputs identical`;
    });
  });

  test('two runs at once, the one computing the features killed: the other takes over from its chunks', { timeout: 300_000 }, async () => {
    await trial('concurrency', '2 runs at once, the feature-computing one SIGKILLed', async () => {
      const ref = await reference();
      const dir = await project();
      const store = path.join(dir, '.tlpipe');
      const children = [start(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS * 2 }), start(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS * 2 })];
      const ended = Promise.all(children.map((c) => finish(c)));
      const fp = ref.summary.stages.find((s) => s.name === 'features')!.fingerprint;
      await afterChunks(store, 2).arm(children[0]!, () => false);
      const owner = Number(await fs.readFile(path.join(store, 'locks', `stage-${fp}.lock`), 'utf8'));
      const victim = children.findIndex((c) => c.pid === owner);
      if (victim < 0) throw new Error(`the features lock is held by pid ${owner}, not by either run`);
      process.kill(owner, 'SIGKILL');
      const rows = await chunkRows(store);
      const runs = await ended;
      assert.equal(runs[victim]!.signal, 'SIGKILL');
      const survivor = runs[1 - victim]!;
      expectClean(survivor, 0, 'the surviving run');
      const summary = summaryOf(survivor);
      expectSameOutputs(await readOutputs(dir, summary), ref.outputs, 'the surviving run');
      const computed = Number(summary.metrics.features?.computed);
      if (statuses(summary).features !== 'ran' || computed > ref.images - rows) {
        throw new Lost(`the survivor computed ${computed} feature vectors, though ${rows} of ${ref.images} were committed by the killed run`);
      }
      // The dead run's scratch folders go when the store is next opened.
      const status = await cli(['status', 'pipelines/catsdogs.yaml', '--set', `data=${ref.data}`], { cwd: dir, timeoutMs: 60_000 });
      expectClean(status, 0, 'tlpipe status');
      await expectConsistentStore(store, 'after the runs and a status');
      return `the survivor took over the dead run's lock, reused its ${rows} committed rows, computed ${computed}; outputs identical; the dead run's scratch removed at the next open`;
    });
  });

  test('two runs with different learning rates at once share the features', { timeout: 300_000 }, async () => {
    await trial('concurrency', '2 runs, different lr, at once', async () => {
      const ref = await reference();
      const dir = await project();
      const a = start(runArgs(ref.data), { cwd: dir, timeoutMs: RUN_BOUND_MS * 2 });
      const b = start(runArgs(ref.data, '--set', 'lr=0.0005', '--set', 'out=out/lr-0.0005'), { cwd: dir, timeoutMs: RUN_BOUND_MS * 2 });
      const [ra, rb] = await Promise.all([finish(a), finish(b)]);
      expectClean(ra, 0, 'run A');
      expectClean(rb, 0, 'run B');
      const [sa, sb] = [summaryOf(ra), summaryOf(rb)];
      expectSameOutputs(await readOutputs(dir, sa), ref.outputs, 'run A (reference parameters)');
      const shared = ['dataset', 'backbone', 'transform', 'freeze', 'features', 'head'];
      const twice = shared.filter((s) => statuses(sa)[s] === 'ran' && statuses(sb)[s] === 'ran');
      if (twice.length) throw new Error(`shared stages computed by both runs: ${twice.join(', ')}`);
      if (statuses(sb).train !== 'ran') throw new Error('run B did not train its own head');
      const store = path.join(dir, '.tlpipe');
      await expectConsistentStore(store, 'after the concurrent runs');
      // B's answer equals B's answer on a store of its own, computed alone.
      const alone = await project();
      await cloneStore(store, path.join(alone, '.tlpipe'), FROM_TRAIN);
      const rc = await cli(runArgs(ref.data, '--set', 'lr=0.0005', '--set', 'out=out/lr-0.0005'), { cwd: alone, timeoutMs: RUN_BOUND_MS });
      expectClean(rc, 0, 'run B alone');
      expectSameOutputs(await readOutputs(dir, sb, 'out/lr-0.0005'), await readOutputs(alone, summaryOf(rc), 'out/lr-0.0005'), 'run B');
      return `the ${shared.length} shared stages ran once in all (the other run waited, then reused them); each run trained its own head; both outputs correct`;
    });
  });
});

describe('locks left behind by dead processes', { skip: needsFixtures }, () => {
  test('a lock with no pid (a crash between creating and writing it) or a dead owner is taken over, not waited for', { timeout: 300_000 }, async () => {
    const cases: [string, (file: string) => Promise<void>][] = [
      [
        'an empty lock file a minute old',
        async (file) => {
          await fs.writeFile(file, '');
          const old = new Date(Date.now() - 60_000);
          await fs.utimes(file, old, old);
        },
      ],
      [
        'a lock held by a process that has exited',
        async (file) => {
          // The pid of a child that ran and exited: not alive any more.
          const child = start(['--version'], { cwd: os.tmpdir() });
          await finish(child);
          await fs.writeFile(file, String(child.pid));
        },
      ],
    ];
    rethrowFirst(
      await pool(cases, 2, ([name, make]) =>
        trial('locks', name, async () => {
          const { dir, store, ref } = await projectFromReference([]);
          const fp = ref.summary.stages.find((s) => s.name === 'dataset')!.fingerprint;
          await make(path.join(store, 'locks', `stage-${fp}.lock`));
          const r = await cli(runArgs(ref.data), { cwd: dir, timeoutMs: 60_000 });
          expectClean(r, 0, 'the run after the crash');
          const summary = summaryOf(r);
          expectSameOutputs(await readOutputs(dir, summary), ref.outputs, 'the run');
          const locks = await fs.readdir(path.join(store, 'locks'));
          if (locks.some((l) => l.startsWith('stage-'))) throw new Error(`stage locks remain: ${locks.join(', ')}`);
          return `taken over in ${r.seconds.toFixed(1)} s; ${summary.stages.filter((s) => s.status === 'cached').length} stages cached, outputs identical`;
        }),
      ),
    );
  });
});

/** Bytes under a folder (files only). */
async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))).size;
  }
  return total;
}

// ── disk full ────────────────────────────────────────────────────────────

describe('disk full: a small file system for the store', { skip: needsFixtures }, () => {
  test('a clear error (exit 73), a consistent store, and a rerun that succeeds once there is room', { timeout: 600_000 }, async () => {
    const rng = random(seedFor('disk full'));
    const probe = await mountTmpfs(1);
    if ('reason' in probe) {
      await trial('disk full', 'store on a small tmpfs', async () => {
        throw new SkipTrial(probe.reason);
      });
      return;
    }
    await probe.unmount();
    const ref = await reference();
    // Free space left for a fresh store, as fractions of what the reference run
    // stored (about 9 MB: a 3.6 MB backbone, a 2.4 MB feature extractor, a 2.4 MB
    // exported model, chunks, entries): the run fails at a different stage each time.
    const needed = await du(ref.store);
    const budgets = [0.05, 0.5, 0.7, 0.85, 0.95].map((f) => Math.round((f + rng.next() * 0.03) * needed));
    const sizeMb = Math.ceil((3 * needed) / 1048576) + 4;
    const settled = await pool(budgets, PARALLEL, (leave) =>
      trial('disk full', `store with ${(leave / 1048576).toFixed(1)} MB free (${Math.round((100 * leave) / needed)} % of a run's)`, async () => {
        const fsys = await mountTmpfs(sizeMb);
        if ('reason' in fsys) throw new SkipTrial(fsys.reason);
        try {
          const dir = await project();
          const store = path.join(fsys.dir, 'store');
          const filler = await fillUntil(fsys.dir, leave);
          const full = await cli(runArgs(ref.data, '--cache-dir', store), { cwd: dir, timeoutMs: RUN_BOUND_MS });
          expectClean(full, 73, 'the run on the full disk');
          if (!/No space left on the device/.test(full.stderr + full.stdout)) throw new Error(`the message does not name the cause: ${full.stderr.slice(-800)}`);
          await expectConsistentStore(store, 'after the failed run');
          const done = doneBefore(full);
          // "Once there is room": the filler is deleted; the same command runs again.
          await fs.rm(filler);
          const rerun = await cli(runArgs(ref.data, '--cache-dir', store), { cwd: dir, timeoutMs: RUN_BOUND_MS });
          expectClean(rerun, 0, 'the rerun with room');
          const summary = summaryOf(rerun);
          for (const stage of done) if (statuses(summary)[stage] !== 'cached') throw new Lost(`"${stage}" finished before the disk filled but ran again`);
          expectSameOutputs(await readOutputs(dir, summary), ref.outputs, 'the rerun');
          await expectConsistentStore(store, 'after the rerun');
          const failedStage = /^✖ (\w+): failed/m.exec(full.stderr)?.[1] ?? 'the run record';
          return `exit 73 at ${failedStage} (${done.length} stage(s) kept); rerun after freeing space: ${ranStages(summary).length} ran, outputs identical`;
        } finally {
          await fsys.unmount();
        }
      }),
    );
    rethrowFirst(settled);
  });

  test('outputs on a full disk: exit 73, no partial output, a rerun that succeeds once there is room', { timeout: 300_000 }, async () => {
    await trial('disk full', 'project outputs on a full tmpfs', async () => {
      const ref = await reference();
      const fsys = await mountTmpfs(8);
      if ('reason' in fsys) throw new SkipTrial(fsys.reason);
      try {
        const dir = path.join(fsys.dir, 'project');
        await fs.mkdir(dir);
        const source = await project();
        await fs.cp(source, dir, { recursive: true });
        const store = await scratchDir('store');
        await fs.rm(store, { recursive: true });
        await cloneStore(ref.store, store, []);
        const filler = await fillUntil(fsys.dir, 1024 * 1024);
        const full = await cli(runArgs(ref.data, '--cache-dir', store), { cwd: dir, timeoutMs: RUN_BOUND_MS });
        expectClean(full, 73, 'the run publishing to a full disk');
        if (!/No space left on the device/.test(full.stderr + full.stdout)) throw new Error(`the message does not name the cause: ${full.stderr.slice(-800)}`);
        const left = await leftovers(dir, store);
        if (left.length) throw new Error(`partial files remain: ${left.join(', ')}`);
        const model = await fs.readFile(path.join(dir, 'out', 'catsdogs', 'model.onnx')).catch(() => undefined);
        if (model && sha256Hex(model) !== ref.outputs.model) throw new Lost('a partial model.onnx was left in place');
        await fs.rm(filler);
        const rerun = await cli(runArgs(ref.data, '--cache-dir', store), { cwd: dir, timeoutMs: RUN_BOUND_MS });
        expectClean(rerun, 0, 'the rerun with room');
        expectSameOutputs(await readOutputs(dir, summaryOf(rerun)), ref.outputs, 'the rerun');
        return 'exit 73 naming the cause, no partial output; rerun restored the outputs from the cache';
      } finally {
        await fsys.unmount();
      }
    });
  });
});

// ── bad pipeline files ───────────────────────────────────────────────────

const EXEC_BASE = `tlpipe: 1
name: bad
params:
  n: 3
stages:
  one:
    uses: exec
    with:
      command: [node, -e, "1"]
`;

interface PipelineCase {
  name: string;
  /** The pipeline file's text (written as p.yaml), or undefined to use pipelines/catsdogs.yaml. */
  text?: string | Buffer;
  args?: string[];
  command?: string;
  files?: Record<string, string>;
  code: number;
  /** What the message must say. */
  says: RegExp;
}

const catsdogsText = async () => fs.readFile(path.join(await project(), 'pipelines', 'catsdogs.yaml'), 'utf8');

async function pipelineCases(): Promise<PipelineCase[]> {
  const catsdogs = await catsdogsText();
  const located = /:\d+:\d+ /;
  const rng = random(seedFor('garbage'));
  return [
    { name: 'YAML syntax error (unclosed bracket)', text: `${EXEC_BASE}      deps: [a, b\n`, code: 2, says: /p\.yaml:\d+:\d+ YAML syntax error/ },
    { name: 'YAML: tab indentation', text: EXEC_BASE.replace('    uses: exec', '\tuses: exec'), code: 2, says: /p\.yaml:\d+:\d+ YAML syntax error/ },
    { name: 'YAML: duplicate key', text: `${EXEC_BASE}name: again\n`, code: 2, says: /p\.yaml:\d+:\d+ .*(unique|duplicate)/i },
    { name: 'empty file', text: '', code: 2, says: located },
    { name: 'a list instead of a mapping', text: '- tlpipe: 1\n- name: x\n', code: 2, says: /Expected a pipeline/ },
    { name: 'binary garbage', text: Buffer.from(Array.from({ length: 2048 }, () => rng.int(0, 255))), code: 2, says: located },
    { name: 'billion laughs (alias bomb)', text: `tlpipe: 1\nname: x\nstages: {}\na: &a [x,x,x,x,x,x,x,x,x]\n${'bcdefgh'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`).join('\n')}\n`, code: 2, says: /alias/i },
    { name: 'deeply nested value (20,000 levels)', text: `tlpipe: 1\nname: x\nstages: {}\nx: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`, code: 2, says: located },
    { name: 'unknown key (lrr)', text: catsdogs.replace('      lr: ${lr}', '      lrr: ${lr}'), code: 2, says: /Unknown key "lrr".*Did you mean "lr"/ },
    { name: 'missing "stages"', text: 'tlpipe: 1\nname: x\n', code: 2, says: /Missing required key "stages"/ },
    { name: 'stage without "uses"', text: `${EXEC_BASE}  two:\n    with: {}\n`, code: 2, says: /uses/ },
    { name: 'unknown step type', text: EXEC_BASE.replace('uses: exec', 'uses: exce'), code: 2, says: /Unknown step type "exce".*Did you mean "exec"/ },
    {
      name: 'a cycle of stages',
      text: `tlpipe: 1\nname: c\nstages:\n  a:\n    uses: exec\n    inputs: [b]\n    with: {command: [node, -e, "1"]}\n  b:\n    uses: exec\n    inputs: [a]\n    with: {command: [node, -e, "1"]}\n`,
      code: 2,
      says: /cycle: (a → b → a|b → a → b)/,
    },
    { name: 'an extends cycle', text: 'extends: q.yaml\ntlpipe: 1\nname: p\nstages: {}\n', files: { 'q.yaml': 'extends: p.yaml\ntlpipe: 1\nname: q\nstages: {}\n' }, code: 2, says: /"extends" makes a cycle/ },
    { name: 'wrong type (epochs: "ten")', args: ['--set', 'epochs=ten'], code: 2, says: /Expected an integer, but was a string \("ten"\)/ },
    { name: 'epochs -1', args: ['--set', 'epochs=-1'], code: 2, says: /Expected a value >= 1, but was -1/ },
    { name: 'batch 0', args: ['--set', 'batch=0'], code: 2, says: /Expected a value >= 1, but was 0/ },
    { name: 'batch 1e12', args: ['--set', 'batch=1e12'], code: 2, says: /Expected a value <= \d+, but was 1000000000000/ },
    { name: 'lr .nan in the file', text: catsdogs.replace('lr: 0.001', 'lr: .nan'), code: 2, says: /Expected a finite number, but was NaN/ },
    { name: 'lr NaN from --set lr=.nan', args: ['--set', 'lr=.nan'], code: 2, says: /--set:1:4 Expected a finite number, but was NaN/ },
    { name: 'lr .inf', args: ['--set', 'lr=.inf'], code: 2, says: /Expected a finite number, but was Infinity/ },
    { name: 'epochs 1e400 (overflows to Infinity)', args: ['--set', 'epochs=1e400'], code: 2, says: /finite/ },
    { name: 'unknown ${param}', text: EXEC_BASE.replace('"1"]', '"${m}"]'), code: 2, says: /Unknown parameter "m"/ },
    { name: 'unset ${env.X} without default', text: EXEC_BASE.replace('"1"]', '"${env.TLPIPE_FAULTS_UNSET}"]'), code: 2, says: /Environment variable TLPIPE_FAULTS_UNSET is not set/ },
    { name: 'a --set key that is nothing', args: ['--set', 'lrate=1'], code: 2, says: /"lrate" is neither a parameter nor a stage/ },
    { name: 'a user step module that does not exist', text: EXEC_BASE.replace('uses: exec', 'uses: ./nowhere.mjs'), code: 2, says: /nowhere\.mjs/ },
    { name: 'a user step module that throws on import', text: EXEC_BASE.replace('uses: exec', 'uses: ./boom.mjs'), files: { 'boom.mjs': 'throw new Error("boom at import");\n' }, code: 2, says: /boom/ },
    { name: 'missing pipeline file', command: 'run', text: undefined, args: ['nope.yaml'], code: 64, says: /nope\.yaml not found/ },
    { name: 'a folder as the pipeline file', command: 'run', args: ['pipelines'], code: 64, says: /is a folder/ },
    { name: '--jobs 0', command: 'run', args: ['--jobs', '0'], code: 64, says: /--jobs expects a whole number/ },
    { name: '--set without "="', command: 'run', args: ['--set', 'lr'], code: 64, says: /--set expects key=value/ },
    { name: '--cache-dir naming a file', command: 'run', args: ['--cache-dir', 'package.json'], code: 73, says: /a file stands where a folder is needed/ },
  ];
}

describe('bad pipeline files: a clear error at the line, never a stack trace', () => {
  test('syntax, schema, cycles, types, absurd values, hostile YAML, bad flags', { timeout: 300_000 }, async () => {
    const cases = await pipelineCases();
    rethrowFirst(
      await pool(cases, 3, (c) =>
        trial('bad pipeline', c.name, async () => {
          const dir = await project(['catsdogs.yaml'], c.files ?? {});
          let file = 'pipelines/catsdogs.yaml';
          if (c.text !== undefined) {
            await fs.writeFile(path.join(dir, 'p.yaml'), c.text);
            file = 'p.yaml';
          }
          const command = c.command ?? 'validate';
          const args = command === 'run' && c.args && !c.args[0]!.startsWith('-') ? [command, ...c.args] : [command, file, ...(c.args ?? [])];
          const r = await cli(args, { cwd: dir, timeoutMs: 60_000, env: { TLPIPE_MODELS: '' } });
          expectClean(r, c.code, c.name);
          if (!c.says.test(r.stderr)) throw new Error(`message does not say ${c.says}: ${r.stderr.slice(0, 600)}`);
          const first = r.stderr.split('\n').find((l) => l.trim()) ?? '';
          return `exit ${r.code} in ${r.seconds.toFixed(1)} s: ${first.slice(0, 90)}`;
        }),
      ),
    );
  });
});

// ── injection and paths ──────────────────────────────────────────────────

const WRITE_ARGS = "require('fs').mkdirSync('out',{recursive:true});require('fs').writeFileSync('out/args.json',JSON.stringify(process.argv.slice(1)))";

describe('security: no shell unless asked, no path out of the project or the store, no secrets in run records', () => {
  test('${...} values and exec arguments are passed as literal arguments', { timeout: 120_000 }, async () => {
    await trial('security', 'shell injection through ${param}, ${env} and exec arguments', async () => {
      const hostile = ['; touch pwned', '$(touch pwned2)', '`touch pwned3`', 'a && touch pwned4 | tee pwned5', "'; touch pwned6; echo '"];
      const text = `tlpipe: 1
name: inject
params:
${hostile.map((h, i) => `  p${i}: ${JSON.stringify(h)}`).join('\n')}
stages:
  args:
    uses: exec
    with:
      command: [node, -e, ${JSON.stringify(WRITE_ARGS)}, ${hostile.map((_, i) => `"\${p${i}}"`).join(', ')}, "\${env.EVIL}", "; touch pwned7"]
      outs: [out/args.json]
`;
      const dir = await project([], { 'p.yaml': text });
      const evil = '`touch pwned8`; touch pwned9 $(touch pwned10)';
      const r = await cli(['run', 'p.yaml'], { cwd: dir, env: { EVIL: evil }, timeoutMs: 60_000 });
      expectClean(r, 0, 'the exec run');
      const args = JSON.parse(await fs.readFile(path.join(dir, 'out', 'args.json'), 'utf8')) as string[];
      assert.deepEqual(args, [...hostile, evil, '; touch pwned7']);
      const pwned = (await fs.readdir(dir, { recursive: true })).filter((f) => /pwned/.test(String(f)));
      if (pwned.length) throw new Error(`a shell ran: ${pwned.join(', ')}`);
      return `${args.length} hostile values arrived as ${args.length} literal arguments; no "pwned" file`;
    });
  });

  test('a shell runs only when the pipeline asks for one (shell:)', { timeout: 120_000 }, async () => {
    await trial('security', 'shell: is the only way to a shell', async () => {
      const text = `tlpipe: 1
name: sh
stages:
  listed:
    uses: exec
    with:
      command: [node, -e, "require('fs').mkdirSync('out',{recursive:true});require('fs').writeFileSync('out/listed.txt', process.argv[1])", "$(echo expanded) > out/redirected.txt"]
      outs: [out/listed.txt]
  shelled:
    uses: exec
    with:
      shell: "mkdir -p out && echo $((6 * 7)) > out/shell.txt"
      outs: [out/shell.txt]
`;
      const dir = await project([], { 'p.yaml': text });
      const r = await cli(['run', 'p.yaml'], { cwd: dir, timeoutMs: 60_000 });
      expectClean(r, 0, 'the run');
      assert.equal(await fs.readFile(path.join(dir, 'out', 'listed.txt'), 'utf8'), '$(echo expanded) > out/redirected.txt');
      if (await fs.stat(path.join(dir, 'out', 'redirected.txt')).then(() => true, () => false)) throw new Error('a command list went through a shell');
      assert.equal((await fs.readFile(path.join(dir, 'out', 'shell.txt'), 'utf8')).trim(), '42');
      return 'command: list passed "$(…) > file" literally; shell: ran /bin/sh (42)';
    });
  });

  test('outputs that try to leave the project are refused before anything runs', { timeout: 300_000 }, async () => {
    const outside = await scratchDir('outside');
    const marker = path.join(outside, 'escaped.txt');
    const write = (to: string) => `require('fs').writeFileSync(${JSON.stringify(to)},'x')`;
    // Declared outputs are refused at validation (exit 2); a working folder outside, when the stage starts (exit 1).
    const cases: [string, string, RegExp, number][] = [
      ['exec outs: [../x]', `outs: ["../${path.basename(outside)}/escaped.txt"]\n      command: [node, -e, ${JSON.stringify(write(`../${path.basename(outside)}/escaped.txt`))}]`, /p\.yaml:\d+:\d+ The output of stage "esc" would be written to .*, outside the project folder/, 2],
      ['exec outs: an absolute path', `outs: [${JSON.stringify(marker)}]\n      command: [node, -e, ${JSON.stringify(write(marker))}]`, /p\.yaml:\d+:\d+ The output of stage "esc" would be written to .*, outside the project folder/, 2],
      ['exec cwd: ..', `cwd: ..\n      command: [node, -e, ${JSON.stringify(write(marker))}]`, /outside the project folder/, 1],
    ];
    rethrowFirst(
      await pool(cases, 2, ([name, withText, says, code]) =>
        trial('security', name, async () => {
          const dir = path.join(outside, `p-${sha256Hex(name).slice(0, 6)}`);
          await fs.mkdir(dir);
          await fs.writeFile(path.join(dir, 'package.json'), '{}');
          await fs.writeFile(path.join(dir, 'p.yaml'), `tlpipe: 1\nname: esc\nstages:\n  esc:\n    uses: exec\n    with:\n      ${withText}\n`);
          const r = await cli(['run', 'p.yaml'], { cwd: dir, timeoutMs: 60_000 });
          expectClean(r, code, name);
          if (!says.test(r.stdout + r.stderr)) throw new Error(`message does not say ${says}: ${r.stderr.slice(-500)}`);
          if (await fs.stat(marker).then(() => true, () => false)) throw new Lost(`a file was written outside the project: ${marker}`);
          return `refused (exit ${code}, "${(/(Output path|would be written to) .*? outside the project folder/.exec(r.stdout + r.stderr)?.[0] ?? says.source).slice(0, 70)}"), the command never ran`;
        }),
      ),
    );
  });

  test('export paths outside the project are refused with a clear message', { skip: needsFixtures, timeout: 300_000 }, async () => {
    const cases: [string, string][] = [
      ['export.csv to: ../outside.csv', 'predictions.to=../outside.csv'],
      ['export.model to: an absolute path', `model.to=${path.join(os.tmpdir(), 'tlpipe-faults-escaped.onnx')}`],
    ];
    rethrowFirst(
      await pool(cases, 2, ([name, set]) =>
        trial('security', name, async () => {
          const { dir, ref } = await projectFromReference([]);
          const r = await cli(runArgs(ref.data, '--set', set), { cwd: dir, timeoutMs: RUN_BOUND_MS });
          // Refused at validation, before any stage runs.
          expectClean(r, 2, name);
          if (!/would be written to .*, outside the project folder/.test(r.stderr + r.stdout)) throw new Error(`no clear refusal: ${r.stderr.slice(-600)}`);
          if (/running/.test(r.stderr)) throw new Error(`a stage ran before the refusal: ${r.stderr.slice(0, 300)}`);
          const target = path.resolve(dir, set.split('=')[1]!);
          if (await fs.stat(target).then(() => true, () => false)) throw new Lost(`written outside the project: ${target}`);
          return 'refused at validation (exit 2): "… would be written to …, outside the project folder", nothing ran or was written';
        }),
      ),
    );
  });

  test('a user step cannot write chunks or publish outside the store and the project', { timeout: 120_000 }, async () => {
    const step = `import fs from 'node:fs';
import path from 'node:path';
export default {
  type: 'evil', version: 1, description: 'tries to escape',
  paramsSchema: { type: 'object', properties: { mode: { type: 'string' }, to: { type: 'string' } } },
  async run(ctx, params) {
    fs.writeFileSync(path.join(ctx.outDir, 'a.txt'), 'a');
    if (params.mode === 'chunks') await ctx.chunks('../../escaped-chunks').append(Buffer.from('x'));
    if (params.mode === 'publish') return { publish: [{ file: 'a.txt', to: params.to }] };
    if (params.mode === 'publish-file') return { publish: [{ file: '../../../../etc/hostname', to: ctx.outputPath('out/h.txt') }] };
    return {};
  },
};
`;
    const outside = await scratchDir('outside');
    const cases: [string, string, RegExp, string][] = [
      ['user step: chunk scope "../../x"', 'mode: chunks', /chunk scope .* is not a plain name/, 'escaped-chunks'],
      ['user step: publish to an absolute path', `mode: publish, to: ${JSON.stringify(path.join(outside, 'published.txt'))}`, /outside the project folder/, path.join(outside, 'published.txt')],
      ['user step: publish a file from outside its folder', 'mode: publish-file', /did not write that file/, 'out/h.txt'],
    ];
    rethrowFirst(
      await pool(cases, 2, ([name, withText, says, escaped]) =>
        trial('security', name, async () => {
          const dir = await project([], { 'steps/evil.mjs': step, 'p.yaml': `tlpipe: 1\nname: evil\nstages:\n  evil:\n    uses: ./steps/evil.mjs\n    with: {${withText}}\n` });
          const r = await cli(['run', 'p.yaml'], { cwd: dir, timeoutMs: 60_000 });
          expectClean(r, 1, name);
          if (!says.test(r.stdout + r.stderr)) throw new Error(`message does not say ${says}: ${r.stderr.slice(-500)}`);
          const where = path.isAbsolute(escaped) ? escaped : path.join(dir, escaped);
          if (await fs.stat(where).then(() => true, () => false)) throw new Lost(`written outside its folder: ${where}`);
          await expectConsistentStore(path.join(dir, '.tlpipe'), name);
          return `refused: ${says.source.replace(/\\/g, '').replace(/\.\*/g, '…')}`;
        }),
      ),
    );
  });

  test('run records mask environment secrets', { timeout: 120_000 }, async () => {
    await trial('security', 'secrets in params, --set and exec env are masked in runs/*.json', async () => {
      const token = 'tok-9f8e7d6c5b4a3210';
      const password = 'hunter2-correct-horse';
      const text = `tlpipe: 1
name: secrets
params:
  token: \${env.API_TOKEN}
  header: "Bearer \${env.API_TOKEN}"
  plain: \${env.DB_PASSWORD}
  note: hello
stages:
  call:
    uses: exec
    with:
      command: [node, -e, "process.exit(process.argv[1] === process.env.API_TOKEN && process.argv[2] === 'Bearer ' + process.env.API_TOKEN ? 0 : 3)", "\${token}", "\${header}"]
      env: {API_TOKEN: "\${env.API_TOKEN}"}
`;
      const dir = await project([], { 'p.yaml': text });
      const env = { API_TOKEN: token, DB_PASSWORD: password };
      const r = await cli(['run', 'p.yaml', '--json', '--set', `note=${password}`], { cwd: dir, env, timeoutMs: 60_000 });
      expectClean(r, 0, 'the run (the secret reached the command)');
      if (r.stdout.includes(token) || r.stdout.includes(password)) throw new Error('the --json summary printed a secret');
      const published = await fs.readdir(path.join(dir, 'out'), { recursive: true }).catch(() => [] as string[]);
      for (const f of published) {
        const text = await fs.readFile(path.join(dir, 'out', String(f)), 'utf8').catch(() => '');
        if (text.includes(token) || text.includes(password)) throw new Error(`out/${f} holds a secret`);
      }
      const runsDir = path.join(dir, '.tlpipe', 'runs');
      const records = await Promise.all((await fs.readdir(runsDir)).map((n) => fs.readFile(path.join(runsDir, n), 'utf8')));
      const leaked = records.filter((t) => t.includes(token) || t.includes(password) || t.includes(token.slice(4)));
      if (leaked.length) throw new Error('a secret was written to runs/*.json');
      if (!records.every((t) => t.includes('***'))) throw new Error('no masked value in the record');
      const shown = await cli(['show', 'last'], { cwd: dir, env, timeoutMs: 60_000 });
      expectClean(shown, 0, 'tlpipe show last');
      if (shown.stdout.includes(token) || shown.stdout.includes(password)) throw new Error('tlpipe show printed a secret');
      const artifacts = (await entries(path.join(dir, '.tlpipe'))).filter((e) => JSON.stringify(e.entry).includes(token)).length;
      return `params, --set and the header masked as *** in runs/*.json, tlpipe show, the --json summary and out/report.html${artifacts ? `; note: ${artifacts} artifact entry keeps the exec env value in its fingerprint record` : ''}`;
    });
  });
});

// ── bad data ─────────────────────────────────────────────────────────────

interface Manifest {
  images: { path: string; width: number; height: number; split: string }[];
}

async function manifestOf(store: string, summary: Summary): Promise<Manifest> {
  const fp = summary.stages.find((s) => s.name === 'dataset')!.fingerprint;
  const e = (await entries(store)).find((x) => x.fingerprint === fp)!;
  return JSON.parse(await fs.readFile(objectPath(store, e.entry.files['manifest.json']!.sha256), 'utf8')) as Manifest;
}

describe('bad data: broken, hostile and unusual images, folders and models', { skip: needsFixtures }, () => {
  test('per-file cases in one dataset: each used or skipped with its reason, within a time bound', { timeout: 300_000 }, async () => {
    const { dir, store, ref } = await projectFromReference([]);
    const data = await photoSet(20, 6);
    const cases = await writeDataCases(data);
    let r: CliRun | undefined;
    let runError: Error | undefined;
    await trial('bad data', `one run over ${cases.length} hostile files among 46 photos`, async () => {
      r = await cli(runArgs(data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
      try {
        expectClean(r, 0, 'the run on the bad data');
      } catch (e) {
        runError = e as Error;
        throw e;
      }
      const s = summaryOf(r);
      return `exit 0 in ${r.seconds.toFixed(1)} s; dataset: ${JSON.stringify(s.metrics.dataset)}, features: ${JSON.stringify(s.metrics.features)}`;
    }).catch(() => undefined);
    if (!r) throw runError ?? new Error('the run did not start');
    const summary = runError ? undefined : summaryOf(r);
    const shown = summary ? JSON.parse((await cli(['show', summary.runId], { cwd: dir, timeoutMs: 60_000 })).stdout) : undefined;
    const datasetValue = shown?.stages.find((s: { name: string }) => s.name === 'dataset')?.value as { skipped: { path: string; reason: string }[] } | undefined;
    const featuresValue = shown?.stages.find((s: { name: string }) => s.name === 'features')?.value as { failed: { path: string; reason: string }[] } | undefined;
    const manifest = summary ? await manifestOf(store, summary) : undefined;
    const nameOf = (f: string | Buffer) => (typeof f === 'string' ? path.basename(f) : path.basename(new TextDecoder().decode(f)));
    const settled = await pool(cases, 1, (c) =>
      trial('bad data', c.name, async () => {
        if (runError) throw runError;
        const base = nameOf(c.file);
        const skipped = datasetValue!.skipped.find((s) => path.basename(s.path) === base);
        const used = manifest!.images.find((i) => path.basename(i.path) === base);
        const failed = featuresValue?.failed.find((f) => path.basename(f.path) === base);
        if (c.expect === 'use') {
          if (!used) throw new Error(`not used: ${skipped?.reason ?? 'absent from the manifest'}`);
          if (failed) throw new Error(`validated but failed in feature extraction: ${failed.reason}`);
          if (c.size && (used.width !== c.size.width || used.height !== c.size.height)) {
            throw new Lost(`used as ${used.width}×${used.height}, expected ${c.size.width}×${c.size.height}`);
          }
          return `used (${used.split}, ${used.width}×${used.height})`;
        }
        if (used) throw new Lost(`used although it should be refused`);
        const reason = skipped?.reason ?? [...(summary!.warnings ?? [])].find((w) => c.reason!.test(w));
        if (!reason || !c.reason!.test(reason)) throw new Error(`not reported with a reason matching ${c.reason}: ${JSON.stringify(skipped ?? datasetValue!.skipped.map((s) => s.reason))}`);
        return `${c.expect === 'skip' ? 'skipped' : 'reported'}: ${reason}`;
      }),
    );
    rethrowFirst(settled);
    const csv = (await readOutputs(dir, summary!)).csv;
    assert.doesNotMatch(csv, /^999,/m, 'the zero-byte test image has no prediction');
    assert.equal(csv, ref.outputs.csv, 'the good test images get the reference predictions');
  });

  async function datasetCase(name: string, layout: 'filename' | 'folders', build: (data: string) => Promise<void>, code: number, says: RegExp): Promise<void> {
    await trial('bad data', name, async () => {
      const dir = await project(['catsdogs.yaml', 'flowers.yaml']);
      const data = await scratchDir('data');
      await build(data);
      const file = layout === 'folders' ? 'pipelines/flowers.yaml' : 'pipelines/catsdogs.yaml';
      const r = await cli(['run', file, '--set', `data=${data}`, '--set', 'epochs=5'], { cwd: dir, timeoutMs: RUN_BOUND_MS });
      expectClean(r, code, name);
      if (!says.test(r.stderr + r.stdout)) throw new Error(`message does not say ${says}: ${r.stderr.slice(-600)}`);
      return `exit ${code}: ${(says.exec(r.stderr + r.stdout)?.[0] ?? '').slice(0, 90)}`;
    });
  }

  const linkPhotos = async (dir: string, cls: string, n: number, name = (i: number) => `${cls}.${i}.jpg`) => {
    await fs.mkdir(dir, { recursive: true });
    for (let i = 0; i < n; i++) await fs.symlink(fixture('datasets', 'catsdogs-2k', 'train', `${cls}.${i}.jpg`), path.join(dir, name(i)));
  };

  test('dataset-level cases: an empty class folder, a single class, no images', { timeout: 300_000 }, async () => {
    const settled = await pool(
      [
        () =>
          datasetCase('an empty class folder (counted, training goes on)', 'folders', async (data) => {
            await linkPhotos(path.join(data, 'train', 'cat'), 'cat', 12, (i) => `${i}.jpg`);
            await linkPhotos(path.join(data, 'train', 'dog'), 'dog', 12, (i) => `${i}.jpg`);
            await fs.mkdir(path.join(data, 'train', 'bird'));
            await linkPhotos(path.join(data, 'test'), 'dog', 2, (i) => `${i + 1}.jpg`);
          }, 0, /class 'bird' has no usable training images/),
        () =>
          datasetCase('a single class', 'filename', async (data) => {
            await linkPhotos(path.join(data, 'train'), 'cat', 10);
            await fs.mkdir(path.join(data, 'test1'));
          }, 1, /only one class \('cat'\).*needs at least two/),
        () =>
          datasetCase("a class with no validation images, weightDecay auto scoring on the validation split", 'folders', async (data) => {
            await linkPhotos(path.join(data, 'train', 'cat'), 'cat', 12, (i) => `${i}.jpg`);
            await linkPhotos(path.join(data, 'train', 'dog'), 'dog', 12, (i) => `${i}.jpg`);
            // Two images: round(2 × 0.2) = 0 go to validation.
            await linkPhotos(path.join(data, 'train', 'fox'), 'dog', 2, (i) => `${i + 100}.jpg`);
            await linkPhotos(path.join(data, 'test'), 'dog', 2, (i) => `${i + 1}.jpg`);
          }, 1, /class 'fox' has no validation images: add some, raise the dataset's valFraction, or set weightDecay to a number/),
        () =>
          datasetCase('no images at all', 'filename', async (data) => {
            await fs.mkdir(path.join(data, 'train'), { recursive: true });
            await fs.mkdir(path.join(data, 'test1'));
            await fs.writeFile(path.join(data, 'train', 'notes.txt'), 'no pictures here');
          }, 1, /no .*images|none of the images/i),
      ],
      2,
      (f) => f(),
    );
    rethrowFirst(settled);
  });

  test('models: not ONNX, the wrong input shape, a sha256 mismatch (local and downloaded), a missing URL', { timeout: 300_000 }, async () => {
    const model = await fs.readFile(fixture('models', 'mobilenetv2-12-int8.onnx'));
    const tampered = Buffer.from(model);
    tampered[tampered.length - 100] ^= 0x01;
    const server = await serveFiles({ '/m/tampered.onnx': tampered, '/m/good.onnx': model });
    try {
      const ref = await reference();
      const cases: { name: string; args: string[]; env?: Record<string, string>; files?: Record<string, string | Uint8Array>; says: RegExp; code: number; only?: string; check?: (xdg: string) => Promise<void> }[] = [
        { name: 'a model file that is not ONNX', args: ['--set', 'backbone=models/junk.onnx'], files: { 'models/junk.onnx': 'this is not a model\n' }, says: /junk\.onnx/, code: 1 },
        { name: 'a model with input [N, 10], not an image', args: ['--set', 'backbone=models/vector.onnx'], files: { 'models/vector.onnx': vectorModel() }, says: /image|input/i, code: 1 },
        {
          name: 'a broken backbone whose features are NaN for some photos: training names them',
          args: ['--set', 'backbone=models/nan.onnx'],
          files: { 'models/nan.onnx': nanFeaturesModel() },
          says: /train failed: the features of \d+ training images? contain NaN or infinite values .*: .*\.jpg/,
          code: 1,
          only: 'train',
        },
        {
          name: 'TLPIPE_MODELS file differs from the catalogue sha256',
          args: [],
          env: { TLPIPE_MODELS: 'models' },
          files: { 'models/mobilenetv2-12-int8.onnx': tampered },
          says: /has sha256 [0-9a-f]{64}, but the catalogue's mobilenetv2-12-int8 expects cc028fe6/,
          code: 1,
        },
        {
          name: 'a downloaded model that does not match its sha256',
          args: ['--set', `backbone=${server.url('/m/tampered.onnx')}`, '--set', `backbone.sha256=${MOBILENET_SHA}`],
          env: { TLPIPE_MODELS: '' },
          says: /has sha256 [0-9a-f]{64}, not the expected cc028fe6.*discarded/,
          code: 1,
          check: async (xdg) => {
            const files = await fs.readdir(path.join(xdg, 'tlpipe', 'models')).catch(() => [] as string[]);
            if (files.length) throw new Lost(`the bad download was kept: ${files.join(', ')}`);
          },
        },
        { name: 'a model URL that answers 404', args: ['--set', `backbone=${server.url('/m/missing.onnx')}`, '--set', `backbone.sha256=${MOBILENET_SHA}`], env: { TLPIPE_MODELS: '' }, says: /HTTP 404/, code: 1 },
        { name: 'a model URL without its sha256', args: ['--set', `backbone=${server.url('/m/good.onnx')}`], env: { TLPIPE_MODELS: '' }, says: /catsdogs\.yaml:\d+:\d+ Stage "backbone": A model given by URL needs its sha256/, code: 2 },
      ];
      rethrowFirst(
        await pool(cases, 2, (c) =>
          trial('bad data', c.name, async () => {
            const dir = await project(['catsdogs.yaml'], c.files ?? {});
            const xdg = await scratchDir('xdg');
            const r = await cli((c.only ? runArgs(ref.data, ...c.args) : runArgs(ref.data, '--only', 'backbone', ...c.args)).filter((a) => a !== '--json'), { cwd: dir, env: { XDG_CACHE_HOME: xdg, ...c.env }, timeoutMs: 60_000 });
            expectClean(r, c.code, c.name);
            if (!c.says.test(r.stderr + r.stdout)) throw new Error(`message does not say ${c.says}: ${(r.stderr + r.stdout).slice(-600)}`);
            await c.check?.(xdg);
            const line = (r.stdout + r.stderr).split('\n').find((l) => c.says.test(l)) ?? '';
            return `exit ${c.code}: ${line.replace(/^.*?(failed: |✖ )/, '').slice(0, 100)}`;
          }),
        ),
      );
    } finally {
      await server.close();
    }
  });
});

describe('the CUDA device and carrying files to a GPU machine in parts', () => {
  test("device 'cuda' without a provider, device 'auto' with one that cannot load", { skip: needsFixtures, timeout: 300_000 }, deviceTrials);
  test('a damaged, rotted or missing part is named and nothing is extracted', { timeout: 120_000 }, carryTrials);
});

// ── dataset downloads ────────────────────────────────────────────────────

describe('dataset downloads: cut connections, wrong bytes, changed and hostile archives', () => {
  const bytes = (seed: string, n: number) => {
    const rng = random(seedFor(seed));
    return Buffer.from(Array.from({ length: n }, () => rng.int(0, 255)));
  };
  const archive = (seed: number) =>
    buildZip(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`PetImages/${i % 2 ? 'Dog' : 'Cat'}/${i}.jpg`, bytes(`zip${seed}-${i}`, 4000)])));

  test('a download cut at seeded points resumes to the same bytes; wrong, changed, hostile or truncated archives are refused and nothing half-extracted stays', { timeout: 120_000 }, async () => {
    const good = archive(1);
    const evil = buildZip({ 'PetImages/Cat/1.jpg': 'x', 'PetImages/../../escaped.txt': 'bad' });
    const truncatedZip = good.subarray(0, Math.floor(good.length * 0.6));
    const server = await serveWithRanges({ '/good.zip': good, '/evil.zip': evil, '/truncated.zip': truncatedZip });
    const noPartialDataset = async (root: string) => {
      const parent = path.dirname(root);
      const names = await fs.readdir(parent).catch(() => [] as string[]);
      const left = names.filter((n) => n.startsWith(`${path.basename(root)}.tlpipe-tmp-`) || (n === path.basename(root)));
      if (left.length) throw new Lost(`a partial dataset was left: ${left.join(', ')}`);
    };
    try {
      const rnd = random(seedFor('download-cuts'));
      for (let k = 0; k < 3; k++) {
        const cutAt = 1 + Math.floor(rnd.next() * (good.length - 2));
        await trial('downloads', `connection cut at byte ${cutAt} of ${good.length}`, async () => {
          const dir = await scratchDir('dl');
          const env = { TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
          const root = path.join(dir, 'data');
          const source = { url: server.url('/good.zip'), size: good.length, sha256: sha256Hex(good) };
          server.cutNext('/good.zip', cutAt);
          const first = await fetchSource(source, root, { env }).then(() => 'finished', (e: Error) => e);
          if (first === 'finished') throw new Error('the cut download finished');
          if (!(first instanceof DownloadError)) throw new Error(`not a clear download error: ${String(first)}`);
          await noPartialDataset(root);
          await fetchSource(source, root, { env });
          const got = await fs.readFile(path.join(env.TLPIPE_DOWNLOADS, 'good.zip'));
          if (!got.equals(good)) throw new Lost('the resumed download differs from the published file');
          const files = await fs.readdir(path.join(root, 'PetImages', 'Cat'));
          if (files.length !== 10) throw new Lost(`extracted ${files.length} cat images, not 10`);
          return `resumed from byte ${server.requests.at(-1)!.range.replace(/\D/g, '') || '0'}, same sha256, 20 images extracted`;
        });
      }
      await trial('downloads', 'the server sends other bytes than the published sha256', async () => {
        const dir = await scratchDir('dl');
        const env = { TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
        const e = await fetchSource({ url: server.url('/good.zip'), sha256: 'ab'.repeat(32) }, path.join(dir, 'data'), { env }).then(() => null, (x: Error) => x);
        if (!e || !/has sha256 [0-9a-f]{64}, not the expected/.test(e.message)) throw new Lost(`accepted or unclear: ${e?.message}`);
        if ((await fs.readdir(env.TLPIPE_DOWNLOADS)).length) throw new Lost('the wrong bytes were kept');
        await noPartialDataset(path.join(dir, 'data'));
        return 'refused, the download deleted, nothing extracted';
      });
      await trial('downloads', 'the kept archive changes after its sha256 was recorded', async () => {
        const dir = await scratchDir('dl');
        const env = { TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
        await fetchSource({ url: server.url('/good.zip') }, path.join(dir, 'first'), { env });
        await flipByte(path.join(env.TLPIPE_DOWNLOADS, 'good.zip'), random(seedFor('download-flip')));
        const e = await fetchSource({ url: server.url('/good.zip') }, path.join(dir, 'second'), { env }).then(() => null, (x: Error) => x);
        if (!e || !/not the recorded/.test(e.message)) throw new Lost(`a changed archive was used: ${e?.message}`);
        await noPartialDataset(path.join(dir, 'second'));
        return 'refused against the recorded sha256, moved aside';
      });
      await trial('downloads', 'an archive entry climbing out of the dataset folder', async () => {
        const dir = await scratchDir('dl');
        const env = { TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
        const e = await fetchSource({ url: server.url('/evil.zip') }, path.join(dir, 'data'), { env }).then(() => null, (x: Error) => x);
        if (!(e instanceof ExtractError)) throw new Lost(`extracted: ${String(e)}`);
        if (await fs.stat(path.join(dir, 'escaped.txt')).then(() => true, () => false)) throw new Lost('a file was written outside the dataset folder');
        await noPartialDataset(path.join(dir, 'data'));
        return `refused: ${e.message.replace(/^.*: (invalid)/, '$1').slice(0, 60)}`;
      });
      await trial('downloads', 'a truncated archive (no sha256 published)', async () => {
        const dir = await scratchDir('dl');
        const env = { TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
        const e = await fetchSource({ url: server.url('/truncated.zip') }, path.join(dir, 'data'), { env }).then(() => null, (x: Error) => x);
        if (!(e instanceof ExtractError)) throw new Lost(`a truncated archive was extracted: ${String(e)}`);
        await noPartialDataset(path.join(dir, 'data'));
        return `refused: ${e.message.slice(-70)}`;
      });
    } finally {
      await server.close();
    }
  });
});

clusterTrials({ reference, runArgs, boundMs: RUN_BOUND_MS });

describe('backbone.quantize: a backbone it cannot quantize, and kills while it calibrates', { skip: needsFixtures }, () => {
  const int8Args = (data: string) => [
    'run', 'pipelines/catsdogs-int8.yaml', '--json', '--set', `data=${data}`, '--set', 'backbone=models/backbone.onnx',
    '--set', 'epochs=20', '--set', 'quantize.calibrationImages=16', '--set', 'quantize.checkImages=8',
  ];

  test('an int8 backbone is refused with its reason; SIGKILL or SIGTERM during calibration loses nothing', { timeout: 600_000 }, async () => {
    const data = await photoSet(16, 4);
    const calibration = [{ data: new Float32Array(2 * 3 * 224 * 224).map((_, i) => (i % 89) / 89 - 0.5), dims: [2, 3, 224, 224] }];
    const alreadyInt8 = (await quantizeModel(floatClassifier(), { calibration })).bytes;

    await trial('bad data', 'backbone.quantize given a backbone that is already int8', async () => {
      const dir = await project(['catsdogs-int8.yaml'], { 'models/backbone.onnx': alreadyInt8 });
      const r = await cli(int8Args(data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
      expectClean(r, 1, 'an int8 backbone');
      const says = /cannot quantize the freeze model: it is already quantized \(\d+ nodes such as QuantizeLinear "[^"]+"\)\. Use it as it is, without the quantize stage\./;
      if (!says.test(r.stderr)) throw new Error(`message does not say ${says}: ${r.stderr.slice(-600)}`);
      const s = statuses(summaryOf(r));
      if (s.quantize !== 'failed' || s.features === 'ran') throw new Lost(`stages after a refused quantization ran: ${JSON.stringify(s)}`);
      return `exit 1: ${(says.exec(r.stderr)?.[0] ?? '').slice(0, 90)}`;
    });

    // The uninterrupted answer, then each kill in the middle of calibration and a rerun that must reproduce it.
    const refDir = await project(['catsdogs-int8.yaml'], { 'models/backbone.onnx': floatClassifier() });
    const refRun = await cli(int8Args(data), { cwd: refDir, timeoutMs: RUN_BOUND_MS });
    expectClean(refRun, 0, 'the int8 reference run');
    const expected = await readOutputs(refDir, summaryOf(refRun), 'out/catsdogs-int8');
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      await trial('interruption', `${signal} during backbone.quantize's calibration`, async () => {
        const dir = await project(['catsdogs-int8.yaml'], { 'models/backbone.onnx': floatClassifier() });
        const store = path.join(dir, '.tlpipe');
        const child = start(int8Args(data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
        const { hit, note, seen } = await interrupt(child, onLine(/quantize: [1-9]\d*\/24 images/, 'quantize loading calibration images'), signal);
        const killed = await finish(child);
        if (!hit) throw new SkipTrial(note);
        if (signal === 'SIGTERM' && stackTraceIn(killed.stderr)) throw new Error(`a stack trace on SIGTERM: ${stackTraceIn(killed.stderr)}`);
        const rerun = await cli(int8Args(data), { cwd: dir, timeoutMs: RUN_BOUND_MS });
        expectClean(rerun, 0, `the rerun after ${signal}`);
        const summary = summaryOf(rerun);
        if (statuses(summary).quantize !== 'ran') throw new Lost(`quantize was not recomputed after ${signal}: ${JSON.stringify(statuses(summary))}`);
        expectSameOutputs(await readOutputs(dir, summary, 'out/catsdogs-int8'), expected, `the rerun after ${signal}`);
        await expectConsistentStore(store, 'after the rerun');
        const left = await leftovers(dir, store);
        if (left.length) throw new Lost(`temp files left behind: ${left.join(', ')}`);
        return `killed at "${seen.trim()}", exit ${killed.code ?? killed.signal}; the rerun reproduced the outputs byte for byte`;
      });
    }
  });
});

// ── fine-tuning interrupted ──────────────────────────────────────────────

describe('interruption of fine-tuning: SIGKILL, SIGTERM and SIGINT at seeded epochs', { skip: needsFixtures }, () => {
  test('the rerun gives the uninterrupted run\'s model byte for byte', { timeout: 900_000 }, async () => {
    const data = await photoSet(20, 2);
    const EPOCHS_FT = 6;
    // Every epoch runs: a patience above the epochs (`--set finetune.patience=null` would remove the key, so the default, 3, would apply).
    const args = ['run', 'pipelines/catsdogs-finetune.yaml', '--json', '--set', `data=${data}`, '--set', `epochs=${EPOCHS_FT}`, '--set', `finetune.patience=${EPOCHS_FT + 1}`, '--set', 'finetune.batchSize=8'];
    const model = async (dir: string) => sha256Hex(await fs.readFile(path.join(dir, 'out', 'catsdogs-finetune', 'model.onnx')));
    // Every epoch's scores, so a run that keeps the probe (whose model does not depend on training) still compares its training.
    const trajectory = async (dir: string) => {
      const shown = await cli(['show', 'last'], { cwd: dir, timeoutMs: 60_000 });
      expectClean(shown, 0, 'tlpipe show last');
      const stage = (JSON.parse(shown.stdout) as { stages: { name: string; value: { history: Record<string, number | null>[] } }[] }).stages.find((x) => x.name === 'finetune')!;
      return JSON.stringify(stage.value.history.map((e) => [e.epoch, e.trainLoss, e.trainAccuracy, e.valLoss, e.valAccuracy]));
    };
    let reference: { model: string; valAccuracy: number; trajectory: string } | undefined;
    await trial('reference', 'fine-tuning uninterrupted, fresh store', async () => {
      const dir = await project(['catsdogs-finetune.yaml']);
      const r = await cli(args, { cwd: dir, timeoutMs: RUN_BOUND_MS });
      expectClean(r, 0, 'the uninterrupted fine-tuning run');
      reference = { model: await model(dir), valAccuracy: Number(summaryOf(r).metrics.finetune!.valAccuracy), trajectory: await trajectory(dir) };
      return `${EPOCHS_FT} epochs; model ${reference.model.slice(0, 12)}, val accuracy ${reference.valAccuracy}`;
    });
    const rng = random(seedFor('finetune interrupted'));
    const cases = (['SIGKILL', 'SIGTERM', 'SIGINT'] as const).map((signal) => ({ signal, epoch: rng.int(0, EPOCHS_FT - 1) }));
    rethrowFirst(
      await pool(cases, PARALLEL, ({ signal, epoch }) =>
        trial('interruption', `${signal} during fine-tuning`, async () => {
          if (!reference) throw new SkipTrial('no reference run');
          const dir = await project(['catsdogs-finetune.yaml']);
          const store = path.join(dir, '.tlpipe');
          // Epoch 0 is the warm start's validation: the signal lands in the next epoch's steps.
          const moment = onLine(epoch === 0 ? /finetune: start \(linear head/ : new RegExp(`finetune: epoch ${epoch}/${EPOCHS_FT}:`), `after fine-tuning epoch ${epoch}/${EPOCHS_FT}`);
          const child = start(args, { cwd: dir, timeoutMs: RUN_BOUND_MS });
          const { seen, note, hit } = await interrupt(child, moment, signal);
          const killed = await finish(child);
          if (!hit) throw new Error(`${moment.label}: ${note} (exit ${killed.code ?? killed.signal})`);
          if (signal === 'SIGKILL') assert.equal(killed.signal, 'SIGKILL');
          else expectClean(killed, signal === 'SIGINT' ? 130 : 143, `the run stopped by ${signal}`);
          const done = doneBefore(killed);
          const torn = (await checkStore(store)).filter((p) => !p.startsWith('tmp/'));
          if (torn.length) throw new Lost(`store inconsistent right after the ${signal}: ${torn.join('; ')}`);
          const rerun = await cli(args, { cwd: dir, timeoutMs: RUN_BOUND_MS });
          expectClean(rerun, 0, 'the rerun');
          const st = statuses(summaryOf(rerun));
          for (const stage of done) if (st[stage] !== 'cached') throw new Lost(`"${stage}" had finished before the ${signal} but ran again`);
          if (st.activations !== 'cached') throw new Lost('the activations were computed again');
          const got = await model(dir);
          if (got !== reference.model) throw new Lost(`the rerun's model ${got.slice(0, 12)} differs from the uninterrupted run's ${reference.model.slice(0, 12)}`);
          const trained = await trajectory(dir);
          if (trained !== reference.trajectory) throw new Lost(`the rerun's epochs ${trained} differ from the uninterrupted run's ${reference.trajectory}`);
          await expectConsistentStore(store, 'after the rerun');
          return `${moment.label} (${seen.trim()}${note ? `, ${note}` : ''}): ${signal === 'SIGKILL' ? 'killed' : `exit ${killed.code}`}, ${done.length} stage(s) kept; rerun ran ${ranStages(summaryOf(rerun)).join(',')}; model and every epoch's scores identical`;
        }),
      ),
    );
    // The activations' chunk log holds 8-bit codes: a kill while they are extracted keeps the committed chunks, and the rerun reads them back exactly.
    await trial('interruption', 'SIGKILL during activations.extract (8-bit chunk log)', async () => {
      if (!reference) throw new SkipTrial('no reference run');
      const dir = await project(['catsdogs-finetune.yaml']);
      const store = path.join(dir, '.tlpipe');
      const chunked = [...args, '--set', 'activations.chunkSize=8'];
      const child = start(chunked, { cwd: dir, timeoutMs: RUN_BOUND_MS });
      const { seen, note, hit } = await interrupt(child, onLine(/activations: (24|32)\/42 images/, 'activations extracting'), 'SIGKILL');
      await finish(child);
      if (!hit) throw new SkipTrial(note);
      const torn = (await checkStore(store)).filter((p) => !p.startsWith('tmp/'));
      if (torn.length) throw new Lost(`store inconsistent right after the SIGKILL: ${torn.join('; ')}`);
      const rerun = await cli(chunked, { cwd: dir, timeoutMs: RUN_BOUND_MS });
      expectClean(rerun, 0, 'the rerun');
      const computed = Number(summaryOf(rerun).metrics.activations?.computed);
      if (!(computed < 42)) throw new Lost(`the rerun computed ${computed} of 42 activation rows: the committed chunks were not used`);
      const got = await model(dir);
      if (got !== reference.model) throw new Lost(`the rerun's model ${got.slice(0, 12)} differs from the uninterrupted run's ${reference.model.slice(0, 12)}`);
      const trained = await trajectory(dir);
      if (trained !== reference.trajectory) throw new Lost(`the rerun's epochs ${trained} differ from the uninterrupted run's ${reference.trajectory}`);
      await expectConsistentStore(store, 'after the rerun');
      return `killed at "${seen.trim()}"; the rerun computed ${computed} of 42 rows, the rest from the chunks; model and every epoch's scores identical`;
    });
  });
});

// ── the verdict ──────────────────────────────────────────────────────────

// ── the remote cache ─────────────────────────────────────────────────────

describe('remote cache: tampered objects, entries, chunks and signatures; servers stopped; pushes killed; two pushers', () => {
  let server: S3Server | undefined;
  after(async () => server?.close());
  test('nothing wrong is ever pulled, a broken remote only costs a recompute, and no entry names a missing object', { timeout: 600_000 }, async () => {
    server = await startS3Server('tlpipe-faults');
    const backends: [string, RemoteSetup][] = [
      ['folder', { url: `file://${await scratchDir('remote')}`, env: {} }],
      ['s3', { url: `s3://${server.bucket}/faults`, env: server.env }],
    ];
    const tampers: Tamper[] = ['object byte flipped', 'object truncated', 'object extended', 'object missing', 'entry value altered', 'entry forged with a valid checksum', 'entry signed with another key', 'entry unsigned'];
    const rng = random(seedFor('push killed'));
    const moments = [...new Set([0, rng.int(1, 7), rng.int(1, 7), 8])].sort((x, y) => x - y);
    const cases: [string, () => Promise<string>][] = [
      ...backends.flatMap(([b, setup]) => tampers.map((t): [string, () => Promise<string>] => [`${b}: ${t}`, () => tamperTrial(setup, t)])),
      ...backends.flatMap(([b, setup]) => (['chunk byte flipped', 'chunk signed with another key'] as const).map((t): [string, () => Promise<string>] => [`${b}: ${t}`, () => chunkTamperTrial(setup, t)])),
      ...backends.map(([b, setup]): [string, () => Promise<string>] => [`${b}: two pushers of one fingerprint at once`, () => twoPushersTrial(setup)]),
      ['s3: server stopped mid-pull', () => serverStoppedTrial('pull')],
      ['s3: server stopped mid-push', () => serverStoppedTrial('push')],
      ...moments.map((k): [string, () => Promise<string>] => [`folder: push killed after ${k} of 8 objects`, () => pushKilledTrial(k)]),
    ];
    rethrowFirst(await pool(cases, PARALLEL, ([name, body]) => trial('remote', name, body)));
  });
});

test('faults: no work lost and no wrong answer in any trial', () => {
  const t = tally();
  assert.equal(t.lost, 0, results.filter((r) => r.outcome === 'lost').map((r) => `${r.group} / ${r.name}: ${r.detail}`).join('\n'));
});
