// `tlpipe report RUN... [--out FILE.html]`, and the report a run writes next
// to its outputs when it ends.
import path from 'node:path';
import type { CommandContext } from '../command-context.js';
import { findProjectDir } from '../runner/analyze.js';
import { describeFsError, errorMessage, ExitCode, TlpipeError, UsageError } from '../runner/errors.js';
import { cacheDirFor, openSession } from '../runner/run.js';
import { type RunRecord, RunRecords } from '../runner/runs.js';
import { writeReport } from './write.js';

const say = (s: string) => process.stderr.write(`${s}\n`);
const print = (s: string) => process.stdout.write(`${s}\n`);

const USAGE = 'Usage: tlpipe report RUN... [--out FILE.html], or tlpipe report --last N. RUN is an id, a unique prefix, last or last~N.';

/** The cache folder for a command that takes no pipeline file (as `tlpipe compare` finds it). */
function storeDirFromCwd(cacheDir: string | undefined): string {
  return cacheDirFor(undefined, cacheDir) === path.join(process.cwd(), '.tlpipe')
    ? path.join(findProjectDir(process.cwd()), '.tlpipe')
    : cacheDirFor(undefined, cacheDir);
}

/** `report-<id>.html` for one run; several runs are named after the first and how many follow. */
export function defaultReportName(records: RunRecord[]): string {
  const first = records[0]!.id;
  return records.length === 1 ? `report-${first}.html` : `report-${first}-and-${records.length - 1}-more.html`;
}

export async function reportCommand(ctx: CommandContext): Promise<number> {
  const session = await openSession(storeDirFromCwd(ctx.values['cache-dir']), say);
  const runs = new RunRecords(session.store);
  let selected: RunRecord[];
  if (ctx.values.last !== undefined) {
    const n = Number(ctx.values.last);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--last expects a whole number ≥ 1, got "${ctx.values.last}".`);
    if (ctx.args.length) throw new UsageError(`Give runs or --last N, not both. ${USAGE}`);
    selected = (await runs.list()).slice(-n);
    if (!selected.length) throw new UsageError('No runs recorded yet in this cache. Run a pipeline first: tlpipe run FILE');
  } else {
    if (!ctx.args.length) throw new UsageError(USAGE);
    selected = [];
    for (const ref of ctx.args) selected.push(await runs.find(ref));
  }
  const out = ctx.values.out ?? defaultReportName(selected);
  if (!/\.html?$/i.test(out)) throw new UsageError(`--out names the HTML file to write, e.g. --out report.html; got "${out}".`);
  let file: string;
  try {
    file = await writeReport(selected, out);
  } catch (e) {
    throw new TlpipeError(describeFsError(e, `writing the report ${out}`), ExitCode.cantWrite, { cause: e });
  }
  if (ctx.values.json) print(JSON.stringify({ report: file, runs: selected.map((r) => r.id) }, null, 2));
  else print(`wrote ${path.relative(process.cwd(), file) || file}`);
  return ExitCode.ok;
}

/** Where a run's own report goes: the folder holding all its outputs, else `out/` in the project. */
export function runReportDir(record: RunRecord, projectDir: string): string {
  const dirs = record.outputs.map((o) => path.dirname(path.resolve(projectDir, o)));
  if (!dirs.length) return path.join(projectDir, 'out');
  let common = dirs[0]!;
  for (const d of dirs.slice(1)) while (common !== path.dirname(common) && path.relative(common, d).startsWith('..')) common = path.dirname(common);
  // Outputs spread over the whole project (or beyond it): do not litter its root.
  const inside = path.relative(projectDir, common);
  return inside === '' || inside.startsWith('..') || path.isAbsolute(inside) ? path.join(projectDir, 'out') : common;
}

/**
 * Writes `report.html` for a finished run (the latest run's report; older
 * ones can be rebuilt with `tlpipe report RUN`) and says where. A report that
 * cannot be written is a warning, never a failed run. Returns the file, or
 * undefined when it could not be written.
 */
export async function writeRunReport(
  record: RunRecord,
  pipelineOutDir?: string,
  options: { projectDir?: string; log?: (line: string) => void } = {},
): Promise<string | undefined> {
  const log = options.log ?? say;
  const dir = pipelineOutDir ?? runReportDir(record, options.projectDir ?? findProjectDir(process.cwd()));
  const file = path.join(dir, 'report.html');
  try {
    await writeReport([record], file, { projectDir: options.projectDir });
    log(`report ${path.relative(process.cwd(), file) || file}`);
    return file;
  } catch (e) {
    log(`warning: the run report could not be written to ${file}: ${errorMessage(e)}`);
    return undefined;
  }
}
