// The `exec` step: runs a command (an argument list; a shell only when the
// stage asks for one), with declared dependencies and outputs, cached like any
// other stage. Declared outputs are stored in the artifact and restored to
// their places when the stage is cached.
import { Type } from '@sinclair/typebox';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { commandOutputKind, storedOutputPath } from '../artifacts/command-output.js';
import { defineParams, type Static } from '../params/define.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep } from '../runner/step.js';
import { listFiles } from '../runner/store.js';

const paramsSchema = defineParams(
  {
    command: Type.Optional(
      Type.Array(Type.Unsafe<string | number>({ type: ['string', 'number'] }), { description: 'The program and its arguments, run without a shell.', minItems: 1 }),
    ),
    shell: Type.Optional(Type.String({ description: 'A command line run by /bin/sh, for pipes and redirections. Use instead of `command`.', minLength: 1 })),
    deps: Type.Array(Type.String(), { description: 'Files or folders the command reads (their contents are part of the fingerprint).', default: [] }),
    outs: Type.Array(Type.String(), { description: 'Files or folders the command writes, inside the project.', default: [] }),
    env: Type.Unsafe<Record<string, string>>({ description: 'Extra environment variables.', type: 'object', additionalProperties: { type: 'string' }, default: {} }),
    cwd: Type.Optional(Type.String({ description: 'Working folder, relative to the project (default: the project).' })),
    timeout: Type.Optional(Type.Number({ description: 'Seconds before the command is stopped.', exclusiveMinimum: 0, maximum: 604800 })),
  },
  {
    // Exactly one of `command` and `shell`.
    if: { not: { required: ['shell'] } },
    then: { required: ['command'] },
    dependencies: { shell: { not: { required: ['command'] } } },
  },
);

const TAIL = 4000;
const tail = (s: string) => (s.length > TAIL ? `...${s.slice(-TAIL)}` : s);

export const execStep = defineStep<Static<typeof paramsSchema>>({
  type: 'exec',
  version: 1,
  description: 'Runs a command with declared dependencies (files or folders it reads) and outputs (files or folders it writes).',
  inputs: { any: true },
  produces: commandOutputKind.name,
  paramsSchema,

  async dependencies(params, ctx) {
    const deps: Record<string, string> = {};
    for (const dep of params.deps) {
      try {
        deps[dep] = await ctx.hashPath(dep);
      } catch {
        throw new Error(
          `dependency "${dep}" does not exist (looked for ${ctx.inputPath(dep)}). If an earlier stage writes it, list that stage under "inputs:" instead of "deps:" (its fingerprint already covers the file).`,
        );
      }
    }
    return { deps, platform: process.platform };
  },

  paths: (params) => ({ writes: params.outs.map((o, i) => ({ param: `outs/${i}`, path: o, what: 'output' })) }),
  async run(ctx, params) {
    const cwd = params.cwd ? ctx.outputPath(params.cwd) : ctx.projectDir;
    const outs = params.outs.map((o) => ({ rel: o, abs: ctx.outputPath(o) }));
    // Stale outputs from an earlier run must not be mistaken for this run's.
    for (const o of outs) await fs.rm(o.abs, { recursive: true, force: true });

    const options = {
      cwd,
      env: params.env,
      reject: false,
      all: true,
      cancelSignal: ctx.signal,
      forceKillAfterDelay: 3000,
      timeout: params.timeout ? params.timeout * 1000 : undefined,
      stdin: 'ignore' as const,
    };
    const [file, ...args] = params.command ? params.command.map(String) : [params.shell!];
    const child = params.command ? execa(file!, args, options) : execa(params.shell!, { ...options, shell: true });
    child.all?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) ctx.log(line);
    });
    const result = await child;
    const shown = params.command ? params.command.join(' ') : params.shell!;
    if (result.isCanceled) throw new StepFailure(`"${shown}" was stopped.`);
    if (result.timedOut) throw new StepFailure(`"${shown}" ran longer than ${params.timeout} s and was stopped.`);
    if (result.failed) {
      const code = result.exitCode ?? (result.signal ? `signal ${result.signal}` : 'unknown');
      const stderr = tail(String(result.stderr ?? '').trim());
      const why = (result as { code?: string }).code === 'ENOENT' ? ` (program "${file}" not found)` : '';
      throw new StepFailure(`"${shown}" failed with exit code ${code}${why}${stderr ? `:\n${stderr}` : ''}`, {
        exitCode: typeof result.exitCode === 'number' ? result.exitCode : undefined,
        stderrTail: stderr,
      });
    }

    const publish: { file: string; to: string }[] = [];
    for (const o of outs) {
      const st = await fs.stat(o.abs).catch(() => undefined);
      if (!st) throw new StepFailure(`"${shown}" succeeded but did not write its declared output "${o.rel}".`);
      const files = st.isDirectory() ? (await listFiles(o.abs)).map((f) => path.join(o.rel, f)) : [o.rel];
      for (const rel of files) {
        const stored = storedOutputPath(rel);
        await fs.mkdir(path.dirname(path.join(ctx.outDir, stored)), { recursive: true });
        await fs.copyFile(path.join(ctx.projectDir, rel), path.join(ctx.outDir, stored));
        publish.push({ file: stored, to: ctx.outputPath(rel) });
      }
    }
    return {
      value: { exitCode: 0, stdoutTail: tail(String(result.stdout ?? '')), stderrTail: tail(String(result.stderr ?? '')) },
      publish,
    };
  },
});
