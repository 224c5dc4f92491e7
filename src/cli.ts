#!/usr/bin/env node
// The `tlpipe` command line: parses arguments, wires a run to its reporter,
// and turns expected failures into messages and exit codes.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { CommandContext } from './command-context.js';
import { ExitCode, TlpipeError } from './runner/errors.js';

const HELP = `tlpipe: declared, cached, resumable transfer-learning pipelines

Usage: tlpipe <command> [options]

Commands:
  init [DATA_DIR]   Recognise a dataset folder's layout and write a pipeline for it
                    (--out FILE, --force to replace an existing one)
  run FILE          Run a pipeline (stages already cached are not rerun)
  status FILE       Show each stage as cached or to-run, and why
  validate FILE     Check a pipeline file and report every problem
  runs              List recorded runs
  show RUN          Print one run record (an id, an id prefix, or last)
  compare RUN...    Compare runs side by side (--last N for the latest N)
  report RUN...     Write a self-contained HTML report (--out FILE.html)
  predict MODEL IMAGE_OR_FOLDER...  Predict with an exported model (--out CSV)
  gc                Remove cached artifacts no kept run references
                    (gc --remote NAME: the same in a remote)
  remote add NAME URL [--default] [--read-only] | remote list | remote remove NAME
                    Name a shared cache: file:///folder or s3://bucket/prefix
  push [RUN...]     Push runs' artifacts (default: the last run) to the remote
  pull FILE         Pull what the pipeline needs from the remote, run nothing
  worker            Take features jobs from a queue (--queue, --remote); see README
  workers           List the live workers and the queue's jobs (--queue)
  steps             List the step types and their parameters
  schema            Print the pipeline JSON Schema

Options for run and status:
  --set KEY=VALUE   Override a parameter (lr=0.01) or a stage parameter
                    (train.epochs=3); repeatable; values are YAML scalars.
                    A comma list (lr=1e-4,1e-3) runs a sweep.
  --force[=STAGE]   Rerun every stage, or only STAGE
  --from STAGE      Rerun STAGE and everything after it
  --only STAGE      Run only STAGE (its inputs must be cached)
  --dry-run         Show the plan without running (same as status)
  --download        Download a dataset that declares a source and is not on
                    disk, without asking (needed in CI and other non-terminals)
  --jobs N          Stages run at once (default 2)
  --json            Print one machine-readable summary on stdout
  --verbose         Show the stack of an unexpected error (a bug) in a stage
  --cache-dir DIR   Artifact store (default: .tlpipe/ in the project;
                    or TLPIPE_CACHE_DIR)
  --remote NAME|URL The remote cache to pull from and push to (or
                    TLPIPE_REMOTE; default: the config's default remote)
  --no-remote       Use no remote
  --remote-read-only  Pull only, never push (or TLPIPE_REMOTE_READ_ONLY=1)
  --queue URL       Spread feature extraction over workers: redis://HOST:6379/0
                    (or TLPIPE_QUEUE); needs a writable --remote

Options for worker: --queue URL --remote NAME|URL [--data-root DIR] [--device cpu|cuda]
  [--threads N] [--concurrency N] [--name NAME] [--models DIR]

Exit codes: 0 ok, 1 a stage failed, 2 invalid pipeline file, 64 usage error,
69 the remote or the queue's Redis is needed and cannot be reached, 73 cache not writable,
130 interrupted.`;

const options = {
  set: { type: 'string', multiple: true },
  force: { type: 'string', multiple: true },
  from: { type: 'string' },
  only: { type: 'string' },
  'dry-run': { type: 'boolean' },
  download: { type: 'boolean' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  jobs: { type: 'string' },
  'cache-dir': { type: 'string' },
  'keep-last': { type: 'string' },
  last: { type: 'string' },
  out: { type: 'string' },
  remote: { type: 'string' },
  'no-remote': { type: 'boolean' },
  'remote-read-only': { type: 'boolean' },
  default: { type: 'boolean' },
  'read-only': { type: 'boolean' },
  queue: { type: 'string' },
  'data-root': { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  concurrency: { type: 'string' },
  name: { type: 'string' },
  models: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

/**
 * `--force` alone means "every stage"; parseArgs needs a value, so give it one.
 * For `init` it is a plain switch (replace an existing file): the word after
 * it is the data folder, never a stage.
 */
function normaliseForce(argv: string[]): string[] {
  const out: string[] = [];
  const isSwitch = argv.find((a) => !a.startsWith('-')) === 'init';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a === '--force' && (isSwitch || next === undefined || next.startsWith('-') || /\.ya?ml$/.test(next) || next.includes(path.sep))) {
      out.push('--force=*');
    } else out.push(a);
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: normaliseForce(argv), options, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\nSee: tlpipe --help\n`);
    return ExitCode.usage;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.version) {
    process.stdout.write('tlpipe 0.1.0\n');
    return 0;
  }
  if (values.help || !command) {
    process.stdout.write(`${HELP}\n`);
    return command || values.help ? 0 : ExitCode.usage;
  }
  // The commands (and the libraries they use) load only when one is asked for:
  // --version and --help answer without them.
  const { commands } = await import('./commands.js');
  const handler = commands[command];
  if (!handler) {
    process.stderr.write(`Unknown command "${command}". See: tlpipe --help\n`);
    return ExitCode.usage;
  }
  const ctx: CommandContext = { args, values: values as CommandContext['values'] };
  try {
    return await handler(ctx);
  } catch (e) {
    if (e instanceof TlpipeError) {
      process.stderr.write(`${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`Internal error (a bug in tlpipe; please report it with this output):\n${(e as Error).stack ?? String(e)}\n`);
    return ExitCode.internal;
  }
}


const code = await main(process.argv.slice(2));
process.exitCode = code;
