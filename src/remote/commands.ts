// The remote's commands: `tlpipe remote add|list|remove`, `tlpipe push`,
// `tlpipe pull`, `tlpipe gc --remote`, and how run/status pick their remote.
import path from 'node:path';
import type { CommandContext } from '../command-context.js';
import { findProjectDir, type Pipeline } from '../runner/analyze.js';
import { ExitCode, UsageError } from '../runner/errors.js';
import { formatBytes, formatProgress } from '../runner/reporters.js';
import { cacheDirFor, loadPipeline, openSession, planRun } from '../runner/run.js';
import type { StepRegistry } from '../runner/registry.js';
import { RunRecords } from '../runner/runs.js';
import type { ArtifactStore } from '../runner/store.js';
import type { Progress, RemoteCache } from './cache.js';
import { addRemote, configPath, readConfig, removeRemote, resolveRemote, type ResolvedRemote } from './config.js';
import { collectRemoteGarbage } from './gc.js';
import { openRemote } from './open.js';

const say = (s: string) => process.stderr.write(`${s}\n`);
const print = (s: string) => process.stdout.write(`${s}\n`);

/** The remote for a command run in `projectDir`, from --remote / --no-remote / --remote-read-only, TLPIPE_REMOTE and the config. */
export function chosenRemote(ctx: CommandContext, projectDir: string): Promise<ResolvedRemote | undefined> {
  return resolveRemote(projectDir, { remote: ctx.values.remote, off: ctx.values['no-remote'], readOnly: ctx.values['remote-read-only'] });
}

/** The remote cache a run or status uses, warnings going to the store (and so the run record). */
export async function remoteForRun(ctx: CommandContext, pipeline: Pipeline, store: ArtifactStore): Promise<RemoteCache | undefined> {
  const remote = await chosenRemote(ctx, pipeline.projectDir);
  return remote && openRemote(remote, store, { warn: (m) => store.warn(m) });
}

/** Progress on stderr for transfers of a megabyte or more: a bar on a terminal, a few lines otherwise. */
function progressLine(label: string): Progress {
  let lastPct = -1;
  return (done, total) => {
    if (total < 1e6) return;
    const pct = Math.floor((100 * done) / total);
    const text = `${label} ${formatProgress(Math.round(done / 1e5) / 10, Math.round(total / 1e5) / 10, 'MB')}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${text}${done >= total ? '\n' : ''}`);
    else if (Math.floor(pct / 25) !== Math.floor(lastPct / 25) || done >= total) say(text);
    lastPct = pct;
  };
}

async function strictRemote(ctx: CommandContext, projectDir: string, store: ArtifactStore, command: string): Promise<RemoteCache> {
  const remote = await chosenRemote(ctx, projectDir);
  if (!remote) {
    throw new UsageError(`tlpipe ${command} needs a remote: add one with \`tlpipe remote add NAME URL\`, or give --remote NAME|URL (or TLPIPE_REMOTE).`);
  }
  return openRemote(remote, store, { warn: (m) => say(`warning: ${m}`), strict: true });
}

const remoteCommand = async (ctx: CommandContext): Promise<number> => {
  const [sub, ...rest] = ctx.args;
  const projectDir = findProjectDir(process.cwd());
  const rel = path.relative(process.cwd(), configPath(projectDir)) || configPath(projectDir);
  switch (sub) {
    case 'add': {
      const [name, url] = rest;
      if (!name || !url || rest.length > 2) throw new UsageError('Usage: tlpipe remote add NAME URL [--default] [--read-only]. URL: file:///shared/folder or s3://bucket/prefix');
      const config = await addRemote(projectDir, name, url, { makeDefault: ctx.values.default, readOnly: ctx.values['read-only'] });
      say(`Added remote "${name}" (${config.remotes![name]!.url}${config.remotes![name]!.readOnly ? ', read-only' : ''}) to ${rel}${config.defaultRemote === name ? '; it is the default' : ''}.`);
      return ExitCode.ok;
    }
    case 'list':
    case undefined: {
      const config = await readConfig(projectDir);
      const remotes = Object.entries(config.remotes ?? {});
      if (ctx.values.json) {
        print(JSON.stringify(remotes.map(([name, r]) => ({ name, url: r.url, readOnly: Boolean(r.readOnly), default: config.defaultRemote === name })), null, 2));
        return ExitCode.ok;
      }
      if (!remotes.length) say(`No remotes configured in ${rel}. Add one with: tlpipe remote add NAME URL`);
      for (const [name, r] of remotes) print(`${config.defaultRemote === name ? '*' : ' '} ${name}  ${r.url}${r.readOnly ? '  (read-only)' : ''}`);
      return ExitCode.ok;
    }
    case 'remove': {
      const [name] = rest;
      if (!name || rest.length > 1) throw new UsageError('Usage: tlpipe remote remove NAME');
      await removeRemote(projectDir, name);
      say(`Removed remote "${name}" from ${rel}.`);
      return ExitCode.ok;
    }
    default:
      throw new UsageError(`Unknown "tlpipe remote ${sub}". Use: tlpipe remote add NAME URL | tlpipe remote list | tlpipe remote remove NAME`);
  }
};

/** `tlpipe push [RUN...]`: the artifacts of recorded runs (default: the last one) and their records. */
const push = async (ctx: CommandContext): Promise<number> => {
  const projectDir = findProjectDir(process.cwd());
  const session = await openSession(cacheDirFor(undefined, ctx.values['cache-dir']) === path.join(process.cwd(), '.tlpipe') ? path.join(projectDir, '.tlpipe') : cacheDirFor(undefined, ctx.values['cache-dir']), (m) => say(`warning: ${m}`));
  const remote = await strictRemote(ctx, projectDir, session.store, 'push');
  if (!remote.writable) throw new UsageError(`The remote ${remote.name} is read-only here (--remote-read-only or its config); nothing was pushed.`);
  const records = new RunRecords(session.store);
  const selected = ctx.args.length ? await Promise.all(ctx.args.map((r) => records.find(r))) : [await records.find('last')];
  let pushed = 0;
  let present = 0;
  let bytes = 0;
  const notLocal: string[] = [];
  const seen = new Set<string>();
  try {
    for (const record of selected) {
      for (const stage of record.stages) {
        if (seen.has(stage.fingerprint)) continue;
        seen.add(stage.fingerprint);
        const found = await session.store.lookup(stage.fingerprint, 'full');
        if (!found.found) {
          if (stage.status !== 'skipped' && stage.status !== 'failed') notLocal.push(stage.name);
          continue;
        }
        if (found.entry.machineLocal) continue;
        const r = await remote.push(found.entry, progressLine(`  ${stage.name}`));
        bytes += r.bytes;
        if (r.pushed) pushed++;
        else present++;
      }
      await remote.pushRun(record);
    }
  } finally {
    remote.close();
  }
  print(`Pushed ${pushed} artifact(s), ${formatBytes(bytes)} of files, to ${remote.name}; ${present} already there.${notLocal.length ? ` Not in the local cache (not pushed): ${notLocal.join(', ')}.` : ''}`);
  return ExitCode.ok;
};

/** `tlpipe pull FILE`: everything the pipeline's current fingerprints need, without running anything. */
const pull = (steps: StepRegistry) => async (ctx: CommandContext): Promise<number> => {
  const file = ctx.args[0];
  if (!file || ctx.args.length > 1) throw new UsageError('Usage: tlpipe pull FILE [--set KEY=VALUE] [--remote NAME|URL]');
  const pipeline = await loadPipeline(file, steps, { set: ctx.values.set });
  const session = await openSession(cacheDirFor(pipeline, ctx.values['cache-dir']), (m) => say(`warning: ${m}`));
  const remote = await strictRemote(ctx, pipeline.projectDir, session.store, 'pull');
  const plan = await planRun(pipeline, session, {}, new AbortController().signal);
  let pulled = 0;
  let bytes = 0;
  const missing: string[] = [];
  try {
    for (const s of plan.stages) {
      if (s.state === 'cached') {
        print(`${s.stage.name}: cached`);
        continue;
      }
      const r = await remote.pull(s.fingerprint, progressLine(`  ${s.stage.name}`));
      if (r.pulled) {
        pulled++;
        bytes += r.bytes;
        print(`${s.stage.name}: pulled ${formatBytes(r.bytes)} in ${r.ms} ms`);
      } else {
        missing.push(s.stage.name);
        print(`${s.stage.name}: ${r.reason}`);
      }
    }
  } finally {
    remote.close();
  }
  print(`Pulled ${pulled} artifact(s), ${formatBytes(bytes)}, from ${remote.name}.${missing.length ? ` Not in the remote (a run computes them): ${missing.join(', ')}.` : ''}`);
  return ExitCode.ok;
};

/** `tlpipe gc --remote NAME`. */
export async function remoteGc(ctx: CommandContext, keepLast: number | undefined): Promise<number> {
  const projectDir = findProjectDir(process.cwd());
  const session = await openSession(path.join(projectDir, '.tlpipe'), (m) => say(`warning: ${m}`));
  const remote = await strictRemote(ctx, projectDir, session.store, 'gc --remote');
  if (!remote.writable) throw new UsageError(`The remote ${remote.name} is read-only here; gc needs write access.`);
  const grace = Number(process.env.TLPIPE_REMOTE_GC_GRACE ?? 3600);
  if (!Number.isFinite(grace) || grace < 0) throw new UsageError(`TLPIPE_REMOTE_GC_GRACE must be a number of seconds ≥ 0, got "${process.env.TLPIPE_REMOTE_GC_GRACE}".`);
  try {
    const r = await collectRemoteGarbage(remote, { keepLast, dryRun: ctx.values['dry-run'], graceMs: grace * 1000 });
    print(
      `${ctx.values['dry-run'] ? 'Would free' : 'Freed'} ${formatBytes(r.freedBytes)} in ${remote.name}: ${r.removedEntries} entries, ${r.removedObjects} files, ${r.removedChunks} chunks, ${r.removedJobResults} queue job results, ${r.removedRuns} run records removed; ${r.keptEntries} entries of ${r.keptRuns} runs kept.`,
    );
  } finally {
    remote.close();
  }
  return ExitCode.ok;
}

/** The remote's commands; `pull` plans a pipeline, so it needs the step registry. */
export function remoteCommands(steps: StepRegistry) {
  return { remote: remoteCommand, push, pull: pull(steps) };
}
