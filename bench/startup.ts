// Start-up cost of the commands that need no model and no image:
//   node dist/bench/startup.js [BASELINE_BIN]
// For each command: median wall time of 7 runs of `node dist/src/bin.cjs ...`,
// and which native modules (onnxruntime-node, sharp) it loaded. With
// BASELINE_BIN (another build's bin.cjs), both builds run interleaved on the
// same machine and the ratio after/before is printed: compare ratios, since
// absolute times move with the machine's load.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = 7;
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../src/bin.cjs');
const baseline = process.argv[2] ? path.resolve(process.argv[2]) : undefined;
const pipeline = path.resolve(here, '../../pipelines/catsdogs.yaml');
const commands: [string, string[]][] = [
  ['--version', ['--version']],
  ['--help', ['--help']],
  ['validate', ['validate', pipeline]],
  ['steps', ['steps']],
  ['schema', ['schema']],
];

// A module hook that records every resolved URL naming a heavy native package.
const dir = mkdtempSync(path.join(os.tmpdir(), 'tlpipe-startup-'));
const log = path.join(dir, 'loaded.txt');
const hooks = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /node_modules\\/(onnxruntime-node|sharp)\\//.exec(r.url);
  if (m) appendFileSync(${JSON.stringify(log)}, m[1] + '\\n');
  return r;
}`;
const register = path.join(dir, 'register.mjs');
writeFileSync(register, `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));\n`);

function once(entry: string, args: string[], traced: boolean): { ms: number; loaded: string[] } {
  writeFileSync(log, '');
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [...(traced ? ['--import', register] : []), entry, ...args], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${entry} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, loaded: [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`median of ${RUNS} runs each (machine: ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)})`);
for (const [name, args] of commands) {
  const after: number[] = [];
  const before: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    after.push(once(bin, args, false).ms);
    if (baseline) before.push(once(baseline, args, false).ms);
  }
  const loaded = once(bin, args, true).loaded;
  const loadedBefore = baseline ? once(baseline, args, true).loaded : [];
  const a = median(after);
  let line = `${name.padEnd(10)} ${a.toFixed(0).padStart(5)} ms  loads: ${loaded.join(', ') || 'no native module'}`;
  if (baseline) {
    const b = median(before);
    line += `  | baseline ${b.toFixed(0).padStart(5)} ms, loads: ${loadedBefore.join(', ') || 'no native module'}  | ratio after/before ${(a / b).toFixed(2)}`;
  }
  console.log(line);
}
rmSync(dir, { recursive: true, force: true });
