// Runs the built `tlpipe` command as a user would, in a child process.
import { execa, type ResultPromise } from 'execa';
import path from 'node:path';
import { repoRoot } from './fixtures.js';

export const cliPath = path.join(repoRoot, 'dist', 'src', 'bin.cjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function tlpipe(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  const r = await execa('node', [cliPath, ...args], {
    cwd: options.cwd,
    env: { CI: 'true', NO_COLOR: '1', ...options.env },
    reject: false,
    stdin: 'ignore',
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Starts a run without waiting, for tests that interrupt it. */
export function startTlpipe(args: string[], options: { cwd: string; env?: Record<string, string> }): ResultPromise {
  return execa('node', [cliPath, ...args], {
    cwd: options.cwd,
    env: { CI: 'true', NO_COLOR: '1', ...options.env },
    reject: false,
    stdin: 'ignore',
  }) as unknown as ResultPromise;
}
