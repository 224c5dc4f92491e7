// Reporters listen to run events and show them: listr2's live view in a
// terminal, plain lines in CI or when piped. `--json` output is built from the
// run record by summary.ts, not here.
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { RunEvent } from './events.js';

export interface Reporter {
  onEvent(event: RunEvent): void;
  /** Resolves when the reporter has drawn everything. */
  close(): Promise<void>;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A transfer's size in words: 15.2 MB, 812 kB, 96 B. */
export function formatBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} B`;
}

/** A stage's end, as both reporters say it: `done in 1.2 s`, `pulled 15.2 MB in 180 ms`, `cached`. */
function stageEndText(e: Extract<RunEvent, { type: 'stage-end' }>): string {
  if (e.status === 'ran') return `done in ${formatDuration(e.durationMs)}`;
  if (e.status === 'pulled') return `pulled ${formatBytes(e.transfer?.bytes ?? 0)} in ${formatDuration(e.transfer?.ms ?? e.durationMs)}`;
  return e.status;
}

/** A bar for transfers (known totals in MB), plain counts otherwise. */
export function formatProgress(done: number, total?: number, unit = 'items'): string {
  if (!total) return `${done} ${unit}`;
  const pct = Math.min(100, Math.floor((100 * done) / total));
  const text = `${done}/${total} ${unit} (${pct}%)`;
  if (unit !== 'MB') return text;
  const width = 20;
  const filled = Math.round((width * pct) / 100);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`;
}

export function useColor(stream: NodeJS.WriteStream, env = process.env): boolean {
  return !env.NO_COLOR && stream.isTTY === true && env.TERM !== 'dumb';
}

/** One line per event; progress at most every 10 % (or 5 s). */
export class PlainReporter implements Reporter {
  private readonly lastProgress = new Map<string, { pct: number; at: number }>();
  constructor(
    private readonly write: (line: string) => void,
    private readonly color = false,
  ) {}

  private paint(code: number, s: string): string {
    return this.color ? `\u001b[${code}m${s}\u001b[0m` : s;
  }

  onEvent(e: RunEvent): void {
    switch (e.type) {
      case 'plan':
        break;
      case 'stage-start':
        this.write(`${this.paint(36, '▸')} ${e.stage}: running (${e.reason})`);
        break;
      case 'stage-waiting':
        this.write(`… ${e.stage}: ${e.message}`);
        break;
      case 'stage-progress': {
        const pct = e.total ? Math.floor((100 * e.done) / e.total / 10) * 10 : -1;
        const last = this.lastProgress.get(e.stage);
        const now = Date.now();
        if (last && pct === last.pct && now - last.at < 5000) return;
        if (last && pct !== -1 && pct === last.pct) return;
        this.lastProgress.set(e.stage, { pct, at: now });
        this.write(`  ${e.stage}: ${formatProgress(e.done, e.total, e.unit)}`);
        break;
      }
      case 'stage-log':
        this.write(`  ${e.stage}${e.level === 'warn' ? this.paint(33, ' warning') : ''}: ${e.message}`);
        break;
      case 'stage-end': {
        const mark = { ran: this.paint(32, '✔'), cached: this.paint(32, '✔'), pulled: this.paint(32, '✔'), failed: this.paint(31, '✖'), skipped: '-' }[e.status];
        const what = stageEndText(e);
        this.write(`${mark} ${e.stage}: ${what}${e.error ? `: ${e.error}` : ''}${e.note ? `: ${e.note}` : ''}`);
        break;
      }
      case 'warning':
        this.write(`${this.paint(33, 'warning')}: ${e.message}`);
        break;
    }
  }

  async close(): Promise<void> {}
}

interface StageView {
  task?: ListrTaskWrapper<unknown, never, never>;
  /** What to show; kept here too because events can come before listr starts the task. */
  title: string;
  output?: string;
  /** Everything the stage logged, printed under the view (in stage order) at the end. */
  logs: string[];
  finish: (error?: Error) => void;
  done: Promise<void>;
}

/**
 * listr2's live view: one line per stage with its state, time and progress.
 * What stages log (epochs, evaluation) is printed below it when the run ends.
 */
export class TerminalReporter implements Reporter {
  private readonly stages = new Map<string, StageView>();
  private list?: Promise<unknown>;
  private readonly pendingLogs: string[] = [];

  onEvent(e: RunEvent): void {
    if (e.type === 'plan') return this.start(e.stages.map((s) => s.name));
    if (e.type === 'warning') {
      this.pendingLogs.push(`warning: ${e.message}`);
      return;
    }
    const view = this.stages.get(e.stage);
    if (!view) return;
    switch (e.type) {
      case 'stage-start':
        this.show(view, `${e.stage}: running (${e.reason})`);
        break;
      case 'stage-waiting':
        this.show(view, `${e.stage}: ${e.message}`);
        break;
      case 'stage-progress':
        this.show(view, undefined, formatProgress(e.done, e.total, e.unit));
        break;
      case 'stage-log':
        // Live as the stage's output line; kept and printed below the view at the end.
        this.show(view, undefined, e.level === 'warn' ? `warning: ${e.message}` : e.message);
        view.logs.push(`  ${e.stage}${e.level === 'warn' ? ' warning' : ''}: ${e.message}`);
        break;
      case 'stage-end':
        this.show(view, `${e.stage}: ${stageEndText(e)}${e.error ? `: ${e.error.split('\n')[0]}` : ''}${e.note ? `: ${e.note}` : ''}`);
        view.finish(e.status === 'failed' ? new Error(`${e.stage}: ${e.error ?? 'failed'}`) : undefined);
        break;
    }
  }

  private show(view: StageView, title?: string, output?: string): void {
    if (title !== undefined) view.title = title;
    if (output !== undefined) view.output = output;
    if (view.task) {
      view.task.title = view.title;
      if (view.output !== undefined) view.task.output = view.output;
    }
  }

  private start(names: string[]): void {
    for (const name of names) {
      let finish!: (error?: Error) => void;
      const done = new Promise<void>((resolve, reject) => {
        finish = (error) => (error ? reject(error) : resolve());
      });
      done.catch(() => undefined);
      this.stages.set(name, { title: `${name}: waiting`, logs: [], finish, done });
    }
    const listr = new Listr(
      names.map((name) => ({
        title: `${name}: waiting`,
        task: async (_: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
          const view = this.stages.get(name)!;
          view.task = task;
          this.show(view);
          await view.done;
        },
      })),
      {
        concurrent: true,
        exitOnError: false,
        registerSignalListeners: false,
        rendererOptions: { collapseErrors: false, showErrorMessage: true } as never,
      },
    );
    this.list = listr.run().catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const view of this.stages.values()) view.finish();
    await this.list;
    const lines = [...[...this.stages.values()].flatMap((v) => v.logs), ...this.pendingLogs];
    for (const line of lines) process.stderr.write(`${line}\n`);
  }
}
