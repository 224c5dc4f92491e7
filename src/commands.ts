// What each `tlpipe` command does. Parsing is in cli.ts; the work is in runner/.
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CommandContext } from './command-context.js';
import type { Pipeline } from './runner/analyze.js';
import { pipelineSchema } from './runner/analyze.js';
import { formatDuration, PlainReporter, type Reporter, TerminalReporter, useColor } from './runner/reporters.js';
import { describeFsError, ExitCode, Interrupted, StoreError, UsageError } from './runner/errors.js';
import type { RunEvent } from './runner/events.js';
import { collectGarbage } from './runner/gc.js';
import { findProjectDir } from './runner/analyze.js';
import { cacheDirFor, loadPipeline, openSession, planRun, runPipeline } from './runner/run.js';
import { describeFailure } from './runner/outcome.js';
import { type RunRecord, RunRecords } from './runner/runs.js';
import { stepRegistry } from './runner/registry.js';
import { builtinSteps } from './steps/index.js';
import { artifactKinds } from './artifacts/index.js';
import type { InputPort } from './runner/step.js';
import { runSummary, formatMetrics } from './runner/summary.js';
import { expandSweep } from './runner/sweep.js';
import { compareRuns, formatComparison } from './runner/compare.js';
import { chosenRemote, remoteCommands, remoteForRun, remoteGc } from './remote/commands.js';

/** The built-in steps, passed to the runner (which imports none). */
const builtins = stepRegistry(builtinSteps, artifactKinds);

type Command = (ctx: CommandContext) => Promise<number>;

// The report (sharp, for thumbnails) and predict (onnxruntime, sharp) load only in the commands that use them.
const reports = () => import('./report/command.js');
const reportCommand: Command = async (ctx) => (await reports()).reportCommand(ctx);

const say = (s: string) => process.stderr.write(`${s}\n`);
const print = (s: string) => process.stdout.write(`${s}\n`);

function pipelineArg(ctx: CommandContext, command: string): string {
  const file = ctx.args[0];
  if (!file) throw new UsageError(`Usage: tlpipe ${command} FILE [options]. FILE is a pipeline, e.g. pipelines/catsdogs.yaml.`);
  if (ctx.args.length > 1) throw new UsageError(`tlpipe ${command} takes one pipeline file; got also "${ctx.args.slice(1).join(' ')}".`);
  return file;
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a whole number ≥ 1, got "${value}".`);
  return n;
}

function forceOption(ctx: CommandContext): boolean | string[] | undefined {
  const f = ctx.values.force;
  if (!f) return undefined;
  return f.includes('*') ? true : f;
}

/** The cache folder for commands that take no pipeline file. */
function storeDirFromCwd(ctx: CommandContext): string {
  return cacheDirFor(undefined, ctx.values['cache-dir']) === path.join(process.cwd(), '.tlpipe')
    ? path.join(findProjectDir(process.cwd()), '.tlpipe')
    : cacheDirFor(undefined, ctx.values['cache-dir']);
}

const validate: Command = async (ctx) => {
  const pipeline = await loadPipeline(pipelineArg(ctx, 'validate'), builtins, { set: ctx.values.set });
  say(`✔ ${path.relative(process.cwd(), pipeline.file)} is valid: ${pipeline.stages.length} stages (${pipeline.stages.map((s) => s.name).join(' → ')}).`);
  return ExitCode.ok;
};

const status: Command = async (ctx) => {
  const pipeline = await loadPipeline(pipelineArg(ctx, 'status'), builtins, { set: ctx.values.set });
  return showPlan(ctx, pipeline);
};

async function showPlan(ctx: CommandContext, pipeline: Pipeline): Promise<number> {
  const session = await openSession(cacheDirFor(pipeline, ctx.values['cache-dir']), say);
  const plan = await planRun(pipeline, session, { force: forceOption(ctx), from: ctx.values.from, only: ctx.values.only }, new AbortController().signal);
  // A stage missing here but in the remote would be pulled, not run.
  const remote = await remoteForRun(ctx, pipeline, session.store);
  const inRemote = new Set<string>();
  for (const s of plan.stages) if (remote && s.state === 'run' && !s.forced && (await remote.has(s.fingerprint))) inRemote.add(s.stage.name);
  remote?.close();
  const stateOf = (s: (typeof plan.stages)[number]) => (inRemote.has(s.stage.name) ? 'in remote' : s.state === 'run' ? 'to-run' : s.state);
  if (ctx.values.json) {
    print(JSON.stringify({ pipeline: pipeline.name, ...(remote ? { remote: remote.name } : {}), stages: plan.stages.map((s) => ({ name: s.stage.name, state: stateOf(s), reason: s.reason, fingerprint: s.fingerprint })) }, null, 2));
    return ExitCode.ok;
  }
  const width = Math.max(...plan.stages.map((s) => s.stage.name.length));
  for (const s of plan.stages) {
    const state = stateOf(s);
    const why = s.state === 'cached' ? s.fingerprint.slice(0, 12) : state === 'in remote' ? `${s.fingerprint.slice(0, 12)} (${remote!.name})` : s.reason;
    print(`${s.stage.name.padEnd(width)}  ${state.padEnd(remote ? 10 : 7)} ${why}`);
  }
  return ExitCode.ok;
}

function makeReporter(json: boolean): Reporter {
  const stream = process.stderr;
  if (!json && stream.isTTY && !process.env.CI) return new TerminalReporter();
  return new PlainReporter((line) => stream.write(`${line}\n`), useColor(stream));
}

const run: Command = async (ctx) => {
  const file = pipelineArg(ctx, 'run');
  const sets = ctx.values.set ?? [];
  const jobs = positiveInt(ctx.values.jobs, '--jobs'); // a bad flag is reported before the file is read
  const first = await loadPipeline(file, builtins, { set: expandSweep(sets, undefined)[0] });
  if (ctx.values['dry-run']) return showPlan({ ...ctx, values: { ...ctx.values, set: expandSweep(sets, undefined)[0] } }, first);
  const variants = expandSweep(sets, first.sweep);
  // The queue's modules (BullMQ, ioredis) load only for a run that uses one.
  const queued = Boolean(ctx.values.queue ?? process.env.TLPIPE_QUEUE);
  const clusterCommands = queued ? await import('./cluster/commands.js') : undefined;
  const runRemote = queued ? await chosenRemote(ctx, first.projectDir) : undefined;
  const cluster = clusterCommands?.clusterForRun(ctx.values, runRemote);
  const label = (variant: string[]) => variant.filter((s) => !sets.includes(s)).join(' ') || variant.join(' ');

  const controller = new AbortController();
  let signalName: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalName) {
      say('Stopped at once.');
      // Die of the signal itself (the shell sees 130 or 143): process.exit would tear
      // down inference threads mid-run, which onnxruntime answers with SIGABRT.
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.kill(process.pid, sig);
      return;
    }
    signalName = sig;
    say(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopping after committing finished work… (press Ctrl-C again to stop at once)`);
    controller.abort(new Interrupted());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const records: RunRecord[] = [];
  let exit: number = ExitCode.ok;
  try {
    for (const [i, variant] of variants.entries()) {
      const pipeline = i === 0 && variants.length === 1 ? first : await loadPipeline(file, builtins, { set: variant });
      if (variants.length > 1) say(`\n── sweep ${i + 1}/${variants.length}: ${label(variant)}`);
      const session = await openSession(cacheDirFor(pipeline, ctx.values['cache-dir']), (m) => say(`warning: ${m}`));
      if (i === 0) {
        // A dataset that is not on disk but declares a source is fetched (with consent) before planning.
        const { fetchMissingSources } = await import('./datasets/fetch-missing.js');
        await fetchMissingSources(pipeline, { download: !!ctx.values.download, signal: controller.signal, say });
      }
      const reporter = makeReporter(ctx.values.json === true);
      const remote = await remoteForRun(ctx, pipeline, session.store);
      const { record } = await runPipeline(pipeline, session, {
        remote,
        force: forceOption(ctx),
        from: ctx.values.from,
        only: ctx.values.only,
        set: variant,
        jobs,
        cluster,
        signal: controller.signal,
        emit: (e: RunEvent) => reporter.onEvent(e),
      });
      await reporter.close();
      remote?.close();
      records.push(record);
      if (!ctx.values.json) printRunEnd(record, pipeline, ctx.values.verbose === true);
      await (await reports()).writeRunReport(record, undefined, { projectDir: pipeline.projectDir });
      if (record.status === 'interrupted') {
        say(`Interrupted. Finished stages and committed chunks are kept; resume with:\n  tlpipe run ${[path.relative(process.cwd(), pipeline.file), ...sets.map((s) => `--set ${s}`)].join(' ')}`);
        exit = signalName === 'SIGTERM' ? 143 : ExitCode.interrupted;
        break;
      }
      // The first combination computed what they all share: the others' training and evaluation become queue jobs.
      if (i === 0 && cluster && clusterCommands && runRemote && variants.length > 1 && record.status === 'succeeded' && !ctx.values.force && !ctx.values.from && !ctx.values.only) {
        await clusterCommands.spreadSweep({
          cluster,
          remote: runRemote,
          combinations: variants.slice(1).map((v) => ({ label: label(v), load: () => loadPipeline(file, builtins, { set: v }) })),
          session,
          steps: builtins,
          signal: controller.signal,
          say,
        });
      }
      if (record.status === 'failed') {
        // A stage that could not write (disk full, read-only) is the cache's problem, not the pipeline's.
        exit = record.stages.some((s) => s.exitCode === ExitCode.cantWrite)
          ? ExitCode.cantWrite
          : record.stages.some((s) => s.exitCode === ExitCode.unavailable)
            ? ExitCode.unavailable
            : ExitCode.runFailed;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cluster?.close();
  }
  if (records.length > 1) {
    // One page comparing the sweep's runs, beside their outputs.
    const [{ runReportDir }, { writeReport }] = await Promise.all([reports(), import('./report/write.js')]);
    const file = await writeReport(records, path.join(runReportDir(records[0]!, first.projectDir), 'sweep-report.html'), { projectDir: first.projectDir });
    say(`sweep report ${path.relative(process.cwd(), file)}`);
  }
  if (ctx.values.json) print(JSON.stringify(records.length === 1 ? runSummary(records[0]!) : { runs: records.map(runSummary) }, null, 2));
  else if (records.length > 1) print(`\n${formatComparison(compareRuns(records))}`);
  return exit;
};

function printRunEnd(record: RunRecord, pipeline: Pipeline, verbose: boolean): void {
  const counts = (['ran', 'pulled', 'cached', 'failed', 'skipped'] as const)
    .map((s) => [s, record.stages.filter((x) => x.status === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`);
  const took = Date.parse(record.finishedAt) - Date.parse(record.startedAt);
  const metrics = formatMetrics(record);
  if (metrics) print(metrics);
  for (const s of record.stages.filter((x) => x.status === 'failed')) print(`✖ ${s.name} failed: ${s.failure ? describeFailure(s.failure, verbose) : s.error}`);
  for (const s of record.stages.filter((x) => x.note)) print(`- ${s.name} skipped: ${s.note}`);
  for (const o of record.outputs) print(`wrote ${path.relative(process.cwd(), path.resolve(pipeline.projectDir, o))}`);
  print(`run ${record.id} ${record.status} in ${formatDuration(took)}: ${counts.join(', ')}`);
}

const runs: Command = async (ctx) => {
  const session = await openSession(storeDirFromCwd(ctx), say);
  const all = await new RunRecords(session.store).list();
  if (ctx.values.json) {
    print(JSON.stringify(all.map(runSummary), null, 2));
    return ExitCode.ok;
  }
  if (!all.length) {
    say('No runs recorded yet.');
    return ExitCode.ok;
  }
  for (const r of all) {
    const ran = r.stages.filter((s) => s.status === 'ran').length;
    print(`${r.id}  ${r.status.padEnd(11)} ${r.pipeline.name.padEnd(16)} ${ran}/${r.stages.length} ran  ${r.set.join(' ')}`);
  }
  return ExitCode.ok;
};

const show: Command = async (ctx) => {
  const ref = ctx.args[0];
  if (!ref) throw new UsageError('Usage: tlpipe show RUN (an id, a unique prefix, or last). See the ids with: tlpipe runs');
  const session = await openSession(storeDirFromCwd(ctx), say);
  const record = await new RunRecords(session.store).find(ref);
  print(JSON.stringify(record, null, 2));
  return ExitCode.ok;
};

const gc: Command = async (ctx) => {
  if (ctx.values.remote !== undefined) {
    return remoteGc(ctx, ctx.values['keep-last'] === undefined ? undefined : positiveInt(ctx.values['keep-last'], '--keep-last'));
  }
  const session = await openSession(storeDirFromCwd(ctx), say);
  const keepLast = ctx.values['keep-last'] === undefined ? undefined : positiveInt(ctx.values['keep-last'], '--keep-last');
  const r = await collectGarbage(session.store, { keepLast, dryRun: ctx.values['dry-run'] });
  const mb = (r.freedBytes / 1e6).toFixed(1);
  print(
    `${ctx.values['dry-run'] ? 'Would free' : 'Freed'} ${mb} MB: ${r.removedArtifacts} artifacts, ${r.removedObjects} files, ${r.removedChunkScopes} chunk logs, ${r.removedRuns} run records removed; ${r.keptRuns} runs kept.`,
  );
  return ExitCode.ok;
};

const steps: Command = async (ctx) => {
  const list = [...builtins.steps.values()];
  if (ctx.values.json) {
    print(
      JSON.stringify(
        list.map((s) => ({ type: s.type, version: s.version, description: s.description, inputs: s.inputs ?? {}, produces: s.produces ?? null, params: s.paramsSchema })),
        null,
        2,
      ),
    );
    return ExitCode.ok;
  }
  for (const s of list) {
    print(`${s.type} (v${s.version}): ${s.description}`);
    const ports = s.inputs && !('any' in s.inputs) ? Object.entries(s.inputs) : [];
    if (ports.length) print(`  inputs: ${ports.map(([k, v]) => `${k}${(v as InputPort).optional ? '?' : ''}`).join(', ')}`);
    const typed = ports.filter(([, v]) => (v as InputPort).kind !== undefined);
    if (typed.length) print(`  input kinds: ${typed.map(([k, v]) => `${k} ← ${[(v as InputPort).kind!].flat().join(' | ')}`).join(', ')}`);
    if (s.produces) print(`  produces: ${s.produces}`);
    const props = (s.paramsSchema.properties ?? {}) as Record<string, { type?: unknown; default?: unknown; description?: string; enum?: unknown[] }>;
    const required = new Set((s.paramsSchema.required as string[] | undefined) ?? []);
    for (const [name, p] of Object.entries(props)) {
      const type = p.enum ? p.enum.map((x) => JSON.stringify(x)).join('|') : Array.isArray(p.type) ? p.type.join('|') : (p.type ?? 'any');
      const dflt = p.default !== undefined ? ` = ${JSON.stringify(p.default)}` : required.has(name) ? ' (required)' : '';
      print(`  ${name}: ${String(type)}${dflt}${p.description ? `  ${p.description}` : ''}`);
    }
    print('');
  }
  return ExitCode.ok;
};

const schema: Command = async () => {
  print(JSON.stringify(pipelineSchema(), null, 2));
  return ExitCode.ok;
};

const compare: Command = async (ctx) => {
  const session = await openSession(storeDirFromCwd(ctx), say);
  const records = new RunRecords(session.store);
  let selected: RunRecord[];
  if (ctx.values.last !== undefined) {
    const n = positiveInt(ctx.values.last, '--last')!;
    selected = (await records.list()).slice(-n);
  } else {
    if (ctx.args.length < 1) throw new UsageError('Usage: tlpipe compare RUN RUN... or tlpipe compare --last N');
    selected = [];
    for (const ref of ctx.args) selected.push(await records.find(ref));
  }
  const table = compareRuns(selected);
  print(ctx.values.json ? JSON.stringify(table, null, 2) : formatComparison(table));
  return ExitCode.ok;
};

const predict: Command = async (ctx) => {
  const [model, ...inputs] = ctx.args;
  if (!model || !inputs.length) throw new UsageError('Usage: tlpipe predict MODEL.onnx IMAGE_OR_FOLDER... [--out predictions.csv]');
  const { predictImages } = await import('./predict/predict.js');
  const result = await predictImages(model, inputs);
  const header = ['id', 'label', 'confidence', ...result.labels.map((l) => `p_${l}`)];
  const rows = result.predictions.map((p) => [p.id, p.labelIndex, p.confidence.toFixed(6), ...p.probabilities.map((x) => x.toFixed(6))].join(','));
  const csv = `${[header.join(','), ...rows].join('\n')}\n`;
  if (ctx.values.out) {
    await writeFileAtomic(path.resolve(ctx.values.out), csv);
    say(`wrote ${result.predictions.length} predictions to ${ctx.values.out}`);
  } else {
    for (const p of result.predictions) print(`${path.relative(process.cwd(), p.path)}\t${p.label}\t${(100 * p.confidence).toFixed(1)}%`);
  }
  for (const f of result.failed) say(`skipped ${f.path}: ${f.reason}`);
  if (result.failed.length) say(`${result.failed.length} image(s) could not be read.`);
  return result.predictions.length ? ExitCode.ok : ExitCode.runFailed;
};

async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tlpipe-tmp-${process.pid}`;
  await mkdir(path.dirname(file), { recursive: true });
  try {
    await writeFile(tmp, text);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new StoreError(describeFsError(e, `writing ${file}`), { cause: e });
  }
}

const init: Command = async (ctx) => {
  if (ctx.args.length > 1) throw new UsageError(`tlpipe init takes one dataset folder; got also "${ctx.args.slice(1).join(' ')}".`);
  const dataDir = ctx.args[0] ?? 'data';
  if (!ctx.args[0] && !existsSync(dataDir)) throw new UsageError('Usage: tlpipe init DATA_DIR [--out FILE] [--force]. DATA_DIR is the folder holding the images.');
  const { initPipeline } = await import('./init/init.js');
  const result = await initPipeline(dataDir, { projectDir: findProjectDir(process.cwd()), file: ctx.values.out, force: !!ctx.values.force });
  const { found, count } = result;
  const total = count.classes.reduce((n, c) => n + c.images, 0);
  const file = path.relative(process.cwd(), result.file) || result.file;
  say(`Found ${found.description.replaceAll(path.resolve(dataDir), path.normalize(dataDir).replace(/\/$/, ''))}`);
  say(`  ${count.classes.length} classes, ${total} labelled images (${count.classes.slice(0, 8).map((c) => `${c.name} ${c.images}`).join(', ')}${count.classes.length > 8 ? ', …' : ''}); ${count.test ? `${count.test} test images` : 'no test images'}`);
  say(`Wrote ${file}. Run it:\n  tlpipe run ${file}`);
  return ExitCode.ok;
};

const worker: Command = async (ctx) => (await import('./cluster/commands.js')).workerCommand(ctx.values);
const workers: Command = async (ctx) => (await import('./cluster/commands.js')).workersCommand(ctx.values);

export const commands: Record<string, Command> = { worker, workers, run, status, validate, runs, show, gc, steps, schema, compare, predict, report: reportCommand, init, ...remoteCommands(builtins) };
