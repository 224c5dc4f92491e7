// The fault suite's harness (test/faults.test.ts): trials and their table,
// the CLI run as a child process with a time bound, kills at chosen moments,
// small real projects, and checks of a store's consistency and of the
// outputs' bytes. Nothing here changes tlpipe's behaviour: faults are made
// from outside, as a user, a crash or a full disk would make them.
import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { canonicalJson, fingerprintOf } from '../../src/runner/fingerprint.js';
import { type ArtifactEntry, entryChecksum } from '../../src/runner/store.js';
import { cliPath } from './cli.js';
import { fixture, repoRoot } from './fixtures.js';

// ── trials and the table ─────────────────────────────────────────────────

/** Work lost or a wrong answer: the outcome the suite exists to rule out. */
export class Lost extends Error {}
/** The trial could not be run here (no permission to mount...): counted apart, with the reason. */
export class SkipTrial extends Error {}

export type Outcome = 'survived' | 'lost' | 'failed' | 'skipped';

export interface TrialResult {
  group: string;
  name: string;
  outcome: Outcome;
  detail: string;
  seconds: number;
}

export const results: TrialResult[] = [];

const oneLine = (s: string, max = 150) => {
  const line = s.replace(/\s*\n\s*/g, ' ⏎ ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

/**
 * Runs one trial and records its outcome: `survived` when `body` returns
 * (its string is the detail shown), `lost` when it throws Lost, `skipped` on
 * SkipTrial, `failed` on any other error (an unclear message, a stack trace,
 * a wrong exit code: a broken promise that lost no work). Failures rethrow,
 * so the enclosing test fails too.
 */
export async function trial(group: string, name: string, body: () => Promise<string | void>): Promise<void> {
  const started = Date.now();
  const seconds = () => Math.round((Date.now() - started) / 100) / 10;
  try {
    const detail = await body();
    results.push({ group, name, outcome: 'survived', detail: detail ?? '', seconds: seconds() });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof SkipTrial) {
      results.push({ group, name, outcome: 'skipped', detail: message, seconds: seconds() });
      return;
    }
    results.push({ group, name, outcome: e instanceof Lost ? 'lost' : 'failed', detail: message, seconds: seconds() });
    throw e;
  }
}

export function tally(): { trials: number; survived: number; lost: number; failed: number; skipped: number } {
  const n = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  return { trials: results.length - n('skipped'), survived: n('survived'), lost: n('lost'), failed: n('failed'), skipped: n('skipped') };
}

/** The table of every trial, then the figures; the last line is `faults: T trials, S survived, L lost`. */
export function formatTable(): string {
  const rows = results.map((r) => [r.group, r.name, r.outcome, `${r.seconds.toFixed(1)} s`, oneLine(r.detail)]);
  const head = ['group', 'case', 'outcome', 'time', 'detail'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const t = tally();
  const total = results.reduce((s, r) => s + r.seconds, 0);
  return [
    '',
    line(head),
    line(widths.map((w, i) => '─'.repeat(i === widths.length - 1 ? Math.min(w, 60) : w))),
    ...rows.map(line),
    '',
    `${t.failed} failed, ${t.skipped} skipped${t.skipped ? ` (${results.filter((r) => r.outcome === 'skipped').map((r) => `${r.name}: ${oneLine(r.detail, 80)}`).join('; ')})` : ''}; trials took ${total.toFixed(0)} s in all; seed ${SEED}`,
    `faults: ${t.trials} trials, ${t.survived} survived, ${t.lost} lost`,
  ].join('\n');
}

// ── seeded randomness ────────────────────────────────────────────────────

/** FAULTS_SEED picks other moments and bytes; the default keeps CI reproducible. */
export const SEED = Number(process.env.FAULTS_SEED ?? 20261130) >>> 0;

/** mulberry32: a small, fast, seedable generator. */
export function random(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(xs: readonly T[]): T } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
  };
}

/** A seed per case, so adding a case does not move every other one's moments. */
export const seedFor = (name: string) => (SEED ^ Number.parseInt(createHash('sha256').update(name).digest('hex').slice(0, 8), 16)) >>> 0;

// ── the CLI, bounded in time ─────────────────────────────────────────────

const cleanups: string[] = [];

/** A scratch folder removed after the suite (kept with FAULTS_KEEP=1, for a post-mortem). */
export async function scratchDir(label: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `tlpipe-faults-${label}-`));
  cleanups.push(dir);
  return dir;
}

export async function removeScratch(): Promise<void> {
  if (process.env.FAULTS_KEEP) return;
  for (const dir of cleanups.splice(0)) await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

let userCache: string | undefined;
/** XDG_CACHE_HOME for every child: the suite never reads or writes the real ~/.cache. */
export function suiteCacheHome(): string {
  if (!userCache) {
    userCache = mkdtempSync(path.join(os.tmpdir(), 'tlpipe-faults-xdg-'));
    cleanups.push(userCache);
  }
  return userCache;
}

export interface CliRun {
  code: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  seconds: number;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string>;
  /** Killed (and reported as timed out) after this long. */
  timeoutMs?: number;
}

export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    CI: 'true',
    NO_COLOR: '1',
    XDG_CACHE_HOME: suiteCacheHome(),
    TLPIPE_MODELS: fixture('models'),
    TLPIPE_CACHE_DIR: '',
    ...extra,
  };
}

/** Starts the CLI without waiting (synchronous: an async function would await the child itself). */
export function start(args: string[], options: CliOptions): ResultPromise {
  return execa('node', [cliPath, ...args], {
    cwd: options.cwd,
    env: childEnv(options.env),
    reject: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? 120_000,
    forceKillAfterDelay: 2_000,
  }) as unknown as ResultPromise;
}

export async function finish(child: ResultPromise, started = Date.now()): Promise<CliRun> {
  const r = await child;
  return {
    code: typeof r.exitCode === 'number' ? r.exitCode : undefined,
    signal: r.signal ?? undefined,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    timedOut: r.timedOut === true,
    seconds: (Date.now() - started) / 1000,
  };
}

export async function cli(args: string[], options: CliOptions): Promise<CliRun> {
  const started = Date.now();
  return finish(start(args, options), started);
}

/** A stack frame or an internal error in the text: what a user must never see for bad input. */
export function stackTraceIn(text: string): string | undefined {
  return /^ {4}at \S.*$/m.exec(text)?.[0] ?? /Internal error.*$/m.exec(text)?.[0];
}

/** Throws (a `failed` trial) unless the run was bounded, clean of stack traces, and exited with `code`. */
export function expectClean(r: CliRun, code: number | number[], what: string): void {
  if (r.timedOut) throw new Error(`${what}: did not finish within its time bound`);
  const trace = stackTraceIn(r.stderr) ?? stackTraceIn(r.stdout);
  if (trace) throw new Error(`${what}: printed a stack trace or internal error: ${trace}\n${r.stderr.slice(-1500)}`);
  const codes = Array.isArray(code) ? code : [code];
  if (r.code === undefined || !codes.includes(r.code)) {
    throw new Error(`${what}: exit ${r.code ?? r.signal}, expected ${codes.join(' or ')}\n${r.stderr.slice(-2000)}${r.stdout.slice(-500)}`);
  }
}

/** Runs `fn` over `items`, `n` at a time. */
export async function pool<T>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<void>): Promise<PromiseSettledResult<void>[]> {
  const out: PromiseSettledResult<void>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      try {
        await fn(items[i]!, i);
        out[i] = { status: 'fulfilled', value: undefined };
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** Rethrows the first failure of a pool, after all have run (each already has its row in the table). */
export function rethrowFirst(settled: PromiseSettledResult<void>[]): void {
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length) {
    const lost = failed.find((f) => f.reason instanceof Lost);
    throw (lost ?? failed[0]!).reason;
  }
}

// ── interrupting a run at a chosen moment ────────────────────────────────

export type KillSignal = 'SIGKILL' | 'SIGTERM' | 'SIGINT';

export interface Moment {
  /** For the table: what the moment is. */
  label: string;
  /** Resolves when the moment has come, with a note on what was seen. */
  arm(child: ResultPromise, stopped: () => boolean): Promise<string>;
}

/**
 * Freezes the process (SIGSTOP) the instant the moment comes, so what it was
 * doing can be looked at, then sends `signal` and lets it go on (SIGCONT) to
 * receive it. A stopped process cannot finish the write it is in.
 */
export const RUN_ENDED_AS_MOMENT_CAME = 'the run ended as the moment came';

/** Whether `pid` is gone or a zombie (Linux: its /proc state is Z or X). */
function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\d+ \(.*\) [ZX]/s.test(stat);
  } catch {
    return true;
  }
}

export async function interrupt(child: ResultPromise, moment: Moment, signal: KillSignal, inspect?: (seen: string) => Promise<string>): Promise<{ seen: string; note: string; hit: boolean }> {
  let exited = false;
  const ended = child.then(() => {
    exited = true;
  });
  const seen = await Promise.race([moment.arm(child, () => exited), ended.then(() => '')]);
  if (exited || !seen) return { seen: '', note: 'the run ended before the moment came', hit: false };
  const pid = child.pid!;
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    return { seen, note: RUN_ENDED_AS_MOMENT_CAME, hit: false };
  }
  // A process that has exited but is not reaped yet takes signals without
  // error: one that finished by itself as the moment came is no interruption.
  if (hasExited(pid)) return { seen, note: RUN_ENDED_AS_MOMENT_CAME, hit: false };
  const note = inspect ? await inspect(seen).catch((e: Error) => `inspect failed: ${e.message}`) : '';
  try {
    process.kill(pid, signal);
    if (signal !== 'SIGKILL') process.kill(pid, 'SIGCONT');
  } catch {
    // It died in between: still an interruption.
  }
  return { seen, note, hit: true };
}

/** When the run has committed at least `n` chunks of features (any scope). */
export function afterChunks(storeRoot: string, n: number): Moment {
  return {
    label: `after ${n} feature chunk(s)`,
    async arm(_child, stopped) {
      for (;;) {
        if (stopped()) return '';
        const count = (await listChunkFiles(storeRoot)).length;
        if (count >= n) return `${count} chunk(s) committed`;
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

/** When the run's output shows a line matching `pattern`. */
export function onLine(pattern: RegExp, label: string): Moment {
  return {
    label,
    arm(child) {
      return new Promise((resolve) => {
        let buffered = '';
        const onData = (chunk: Buffer) => {
          buffered += chunk.toString();
          const m = pattern.exec(buffered);
          if (m) {
            child.stderr?.off('data', onData);
            resolve(m[0]);
          }
          buffered = buffered.slice(-4000);
        };
        child.stderr?.on('data', onData);
      });
    },
  };
}

/**
 * When the `nth` file whose name matches appears in `dir` (inotify): an
 * atomic write's temp file in the store's tmp/, or a published output's.
 */
export function onFileCreated(dir: string, match: (name: string) => boolean, nth: number, label: string): Moment {
  return {
    label,
    arm(_child, stopped) {
      return new Promise((resolve) => {
        let count = 0;
        const seen = new Set<string>();
        let watcher: FSWatcher | undefined;
        const timer = setInterval(() => {
          if (stopped()) {
            clearInterval(timer);
            watcher?.close();
            resolve('');
          }
        }, 50);
        watcher = watch(dir, (_event, name) => {
          const file = name?.toString();
          if (!file || seen.has(file) || !match(file)) return;
          seen.add(file);
          if (++count === nth) {
            clearInterval(timer);
            watcher?.close();
            resolve(file);
          }
        });
      });
    },
  };
}

// ── projects and data ────────────────────────────────────────────────────

/** A project folder holding a copy of one of the repository's pipelines (and any extra files). */
export async function project(pipelines: string[] = ['catsdogs.yaml'], files: Record<string, string | Uint8Array> = {}): Promise<string> {
  const dir = await scratchDir('project');
  await fs.writeFile(path.join(dir, 'package.json'), '{}\n');
  await fs.mkdir(path.join(dir, 'pipelines'));
  for (const p of pipelines) await fs.copyFile(path.join(repoRoot, 'pipelines', p), path.join(dir, 'pipelines', p));
  for (const [rel, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), content);
  }
  return dir;
}

/** A Kaggle-layout data folder of links to real photos: `perClass` cats and dogs, `tests` test images. */
export async function photoSet(perClass = 20, tests = 6, dir?: string): Promise<string> {
  const data = dir ?? (await scratchDir('data'));
  const source = fixture('datasets', 'catsdogs-2k');
  await fs.mkdir(path.join(data, 'train'), { recursive: true });
  await fs.mkdir(path.join(data, 'test1'), { recursive: true });
  for (let i = 0; i < perClass; i++) {
    for (const c of ['cat', 'dog']) await fs.symlink(path.join(source, 'train', `${c}.${i}.jpg`), path.join(data, 'train', `${c}.${i}.jpg`));
  }
  for (let i = 1; i <= tests; i++) await fs.symlink(path.join(source, 'test1', `${i}.jpg`), path.join(data, 'test1', `${i}.jpg`));
  return data;
}

export const sha256Hex = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

// ── what a run produced ──────────────────────────────────────────────────

export interface Summary {
  runId: string;
  status: string;
  stages: { name: string; status: string; fingerprint: string; error?: string }[];
  metrics: Record<string, Record<string, unknown>>;
  outputs: string[];
  warnings: string[];
}

export function summaryOf(r: CliRun): Summary {
  try {
    return JSON.parse(r.stdout) as Summary;
  } catch {
    throw new Error(`no JSON summary on stdout (exit ${r.code ?? r.signal}):\n${r.stderr.slice(-2000)}`);
  }
}

export const statuses = (s: Summary) => Object.fromEntries(s.stages.map((x) => [x.name, x.status]));

export interface Outputs {
  csv: string;
  model: string;
  /** Metrics, canonical JSON, without `features.computed` (how many vectors this run computed, not what they are). */
  metrics: string;
}

export async function readOutputs(dir: string, summary: Summary, out = 'out/catsdogs'): Promise<Outputs> {
  const read = (f: string) => fs.readFile(path.join(dir, out, f)).catch(() => Buffer.from(''));
  const metrics = structuredClone(summary.metrics);
  delete metrics.features?.computed;
  // How a queued run spread the work, not what it computed.
  for (const k of Object.keys(metrics.features ?? {})) if (k.startsWith('chunks')) delete metrics.features![k];
  return {
    csv: (await read('submission.csv')).toString(),
    model: sha256Hex(await read('model.onnx')),
    metrics: canonicalJson(metrics),
  };
}

/** Throws Lost when the outputs differ from the reference in any byte. */
export function expectSameOutputs(actual: Outputs, expected: Outputs, what: string): void {
  const diffs: string[] = [];
  if (actual.csv !== expected.csv) diffs.push(`submission.csv differs (${JSON.stringify(actual.csv.slice(0, 80))} vs ${JSON.stringify(expected.csv.slice(0, 80))})`);
  if (actual.model !== expected.model) diffs.push(`model.onnx differs (sha256 ${actual.model.slice(0, 12)} vs ${expected.model.slice(0, 12)})`);
  if (actual.metrics !== expected.metrics) diffs.push(`metrics differ: ${actual.metrics.slice(0, 300)} vs ${expected.metrics.slice(0, 300)}`);
  if (diffs.length) throw new Lost(`${what}: ${diffs.join('; ')}`);
}

// ── the store ────────────────────────────────────────────────────────────

/** Chunk files, oldest first within a scope; by default only the feature stage's (scopes named by a sha256). */
export async function listChunkFiles(storeRoot: string, scopes: 'features' | 'all' = 'features'): Promise<string[]> {
  const out: string[] = [];
  const chunks = path.join(storeRoot, 'chunks');
  for (const scope of await fs.readdir(chunks).catch(() => [] as string[])) {
    if (scopes === 'features' && !/^[0-9a-f]{64}$/.test(scope)) continue;
    for (const name of await fs.readdir(path.join(chunks, scope)).catch(() => [] as string[])) {
      if (name.endsWith('.chunk')) out.push(path.join(chunks, scope, name));
    }
  }
  return out.sort();
}

const CHUNK_HEADER = 8 + 32 + 8;

/** The payload of a chunk file if it is intact (magic, length, sha256), else undefined. */
export function chunkPayload(data: Buffer): Buffer | undefined {
  if (data.length < CHUNK_HEADER || data.toString('ascii', 0, 8) !== 'TLCHUNK1') return undefined;
  const payload = data.subarray(CHUNK_HEADER);
  if (Number(data.readBigUInt64LE(40)) !== payload.length) return undefined;
  return createHash('sha256').update(payload).digest().equals(data.subarray(8, 40)) ? payload : undefined;
}

/** Feature rows (distinct image hashes) held by intact chunks. */
export async function chunkRows(storeRoot: string): Promise<number> {
  const hashes = new Set<string>();
  for (const file of await listChunkFiles(storeRoot)) {
    const payload = chunkPayload(await fs.readFile(file).catch(() => Buffer.alloc(0)));
    if (!payload || payload.length < 8) continue;
    const count = payload.readUInt32LE(0);
    const width = payload.readUInt32LE(4);
    for (let i = 0; i < count; i++) hashes.add(payload.toString('hex', 8 + i * (32 + 4 * width), 8 + i * (32 + 4 * width) + 32));
  }
  return hashes.size;
}

export interface StoredEntry {
  fingerprint: string;
  file: string;
  entry: ArtifactEntry;
}

export async function entries(storeRoot: string): Promise<StoredEntry[]> {
  const dir = path.join(storeRoot, 'artifacts');
  const out: StoredEntry[] = [];
  for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort()) {
    if (!name.endsWith('.json')) continue;
    try {
      out.push({ fingerprint: name.slice(0, -5), file: path.join(dir, name), entry: JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as ArtifactEntry });
    } catch {
      // Unreadable: checkStore reports it.
    }
  }
  return out;
}

export const objectPath = (storeRoot: string, sha: string) => path.join(storeRoot, 'objects', sha.slice(0, 2), sha);

/** A copy of a store without the artifacts of `dropStages` (and, if asked, without chunks). */
export async function cloneStore(from: string, to: string, dropStages: string[], options: { dropChunks?: boolean } = {}): Promise<void> {
  await fs.cp(from, to, { recursive: true });
  for (const e of await entries(to)) if (dropStages.includes(e.entry.stage)) await fs.rm(e.file);
  if (options.dropChunks) await fs.rm(path.join(to, 'chunks'), { recursive: true, force: true });
}

/**
 * Everything that would make a store inconsistent: an entry that does not
 * parse or verify, a referenced object missing or different from its hash, a
 * corrupt chunk, an unreadable run record, anything left in tmp/. Read only.
 */
export async function checkStore(storeRoot: string): Promise<string[]> {
  const problems: string[] = [];
  const artifacts = path.join(storeRoot, 'artifacts');
  for (const name of await fs.readdir(artifacts).catch(() => [] as string[])) {
    const file = path.join(artifacts, name);
    let entry: ArtifactEntry;
    try {
      entry = JSON.parse(await fs.readFile(file, 'utf8')) as ArtifactEntry;
    } catch {
      problems.push(`artifacts/${name} does not parse`);
      continue;
    }
    if (`${entry.fingerprint}.json` !== name || fingerprintOf(entry.record) !== entry.fingerprint) problems.push(`artifacts/${name}: fingerprint does not match`);
    if (entry.checksum !== entryChecksum(entry)) problems.push(`artifacts/${name}: checksum does not match`);
    for (const [f, { sha256 }] of Object.entries(entry.files)) {
      const data = await fs.readFile(objectPath(storeRoot, sha256)).catch(() => undefined);
      if (!data) problems.push(`artifacts/${name}: object of "${f}" is missing`);
      else if (sha256Hex(data) !== sha256) problems.push(`artifacts/${name}: object of "${f}" does not match its hash`);
    }
  }
  for (const file of await listChunkFiles(storeRoot, 'all')) {
    if (!chunkPayload(await fs.readFile(file))) problems.push(`${path.relative(storeRoot, file)} is corrupt`);
  }
  const runs = path.join(storeRoot, 'runs');
  for (const name of await fs.readdir(runs).catch(() => [] as string[])) {
    try {
      const r = JSON.parse(await fs.readFile(path.join(runs, name), 'utf8')) as { checksum?: string };
      const { checksum, ...rest } = r;
      if (checksum !== sha256Hex(canonicalJson(rest))) problems.push(`runs/${name}: checksum does not match`);
    } catch {
      problems.push(`runs/${name} does not parse`);
    }
  }
  const tmp = await fs.readdir(path.join(storeRoot, 'tmp')).catch(() => [] as string[]);
  if (tmp.length) problems.push(`tmp/ holds ${tmp.join(', ')}`);
  return problems;
}

/** Throws Lost when the store is inconsistent; a plain failure when only scratch files remain in tmp/. */
export async function expectConsistentStore(storeRoot: string, what: string): Promise<void> {
  const problems = await checkStore(storeRoot);
  const torn = problems.filter((p) => !p.startsWith('tmp/'));
  if (torn.length) throw new Lost(`${what}: store inconsistent: ${torn.slice(0, 5).join('; ')}`);
  if (problems.length) throw new Error(`${what}: scratch files remain: ${problems.join('; ')}`);
}

/** Temp files left in the store's tmp/ or beside the project's outputs. */
export async function leftovers(projectDir: string, storeRoot: string): Promise<string[]> {
  const found = (await fs.readdir(path.join(storeRoot, 'tmp')).catch(() => [] as string[])).map((n) => `store tmp/${n}`);
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(dir, e.name);
      if (e.isDirectory() && !e.isSymbolicLink()) {
        if (full !== storeRoot && e.name !== '.tlpipe') await walk(full);
      } else if (/\.tlpipe-tmp-|\.part-|\.tmp$/.test(e.name)) found.push(path.relative(projectDir, full));
    }
  };
  await walk(projectDir);
  return found;
}

// ── damaging files ───────────────────────────────────────────────────────

/** Flips one byte (xor `mask`) at a seeded position; returns the position. */
export async function flipByte(file: string, rng: ReturnType<typeof random>, range?: [number, number]): Promise<number> {
  await fs.chmod(file, 0o644);
  const data = await fs.readFile(file);
  const [lo, hi] = range ?? [0, data.length - 1];
  const at = rng.int(lo, Math.min(hi, data.length - 1));
  data[at] = data[at]! ^ (1 << rng.int(0, 7));
  await fs.writeFile(file, data);
  return at;
}

/** Cuts a file to a seeded length shorter than it is; returns the new length. */
export async function truncate(file: string, rng: ReturnType<typeof random>): Promise<number> {
  await fs.chmod(file, 0o644);
  const { size } = await fs.stat(file);
  const length = rng.int(0, Math.max(0, size - 1));
  await fs.truncate(file, length);
  return length;
}

// ── a local model server (no network in CI) ──────────────────────────────

export interface ModelServer {
  url(name: string): string;
  /** Requests served, by path. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/** Serves `files` (URL path → bytes) on 127.0.0.1. */
export async function serveFiles(files: Record<string, Uint8Array>): Promise<ModelServer> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0]!;
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const body = files[p];
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}${name}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ── a small file system for "disk full" ──────────────────────────────────

/** Mounts a tmpfs of `sizeMb` at a fresh folder; undefined (with the reason) where mounting is not permitted. */
export async function mountTmpfs(sizeMb: number): Promise<{ dir: string; unmount(): Promise<void> } | { reason: string }> {
  if (process.platform !== 'linux') return { reason: `tmpfs needs Linux (this is ${process.platform})` };
  const dir = await scratchDir('tmpfs');
  const r = await execa('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { reject: false, timeout: 10_000 });
  if (r.exitCode !== 0) return { reason: `cannot mount a tmpfs here (${String(r.stderr).trim() || `exit ${r.exitCode}`}; needs root or CAP_SYS_ADMIN)` };
  return {
    dir,
    unmount: async () => {
      await execa('umount', ['-l', dir], { reject: false, timeout: 10_000 });
    },
  };
}

export async function freeBytes(dir: string): Promise<number> {
  const st = await fs.statfs(dir);
  return st.bavail * st.bsize;
}

/** Fills `dir` until only `leaveBytes` are free; returns the filler file. */
export async function fillUntil(dir: string, leaveBytes: number): Promise<string> {
  const filler = path.join(dir, 'filler.bin');
  const size = Math.max(0, (await freeBytes(dir)) - leaveBytes);
  const handle = await fs.open(filler, 'w');
  try {
    const block = Buffer.alloc(1 << 20, 0xa5);
    for (let written = 0; written < size; ) {
      const n = Math.min(block.length, size - written);
      await handle.write(block, 0, n);
      written += n;
    }
  } finally {
    await handle.close();
  }
  return filler;
}

export const exists = (p: string) => existsSync(p);
