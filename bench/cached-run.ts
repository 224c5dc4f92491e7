// How fast the command line answers: `tlpipe --version`, `--help`, a fully
// cached catsdogs run on the 3,003 fixture photos, and `tlpipe status` on it.
// Each is run REPS times; the medians of wall time and of CPU time (user +
// system, of the tlpipe process) are printed, beside the figures of the issue
// that asked for this (idle machine, before: 0.64 s, 1.39 s, 1.27 s). With
// `--old DIR` (a built checkout of an older commit: DIR/dist/src/bin.cjs) the
// same commands of that build are timed in the same run, interleaved, and the
// ratios old/new printed: on a loaded machine the ratios are what to judge.
//
//   npm run build && node dist/bench/cached-run.js [--reps 7] [--old /tmp/tlpipe-old]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, haveFixtures } from '../test/support/fixtures.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const reps = Number(option('--reps') ?? 7);
const oldRoot = option('--old');

/** Prints the process's CPU time at exit, for the parent to read. */
const cpuProbe = path.join(os.tmpdir(), `tlpipe-bench-cpu-${process.pid}.cjs`);
writeFileSync(
  cpuProbe,
  "process.on('exit', () => { const u = process.cpuUsage(); require('fs').writeFileSync(process.env.TLPIPE_BENCH_CPU, String((u.user + u.system) / 1e6)); });\n",
);

interface Build {
  label: string;
  bin: string;
  project: string;
}

function makeBuild(label: string, root: string): Build {
  const project = mkdtempSync(path.join(os.tmpdir(), `tlpipe-bench-cached-${label}-`));
  writeFileSync(path.join(project, 'package.json'), '{}');
  mkdirSync(path.join(project, 'pipelines'));
  copyFileSync(path.join(root, 'pipelines', 'catsdogs.yaml'), path.join(project, 'pipelines', 'catsdogs.yaml'));
  return { label, bin: path.join(root, 'dist', 'src', 'bin.cjs'), project };
}

function timeOnce(build: Build, command: string[]): { wall: number; cpu: number } {
  const cpuFile = path.join(build.project, 'cpu.txt');
  const started = performance.now();
  const r = spawnSync(process.execPath, ['--require', cpuProbe, build.bin, ...command], {
    cwd: build.project,
    env: { ...process.env, TLPIPE_MODELS: fixture('models'), CI: 'true', TLPIPE_BENCH_CPU: cpuFile },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  const wall = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`${build.label}: tlpipe ${command.join(' ')} exited ${r.status}: ${String(r.stderr).slice(-800)}`);
  return { wall, cpu: Number(readFileSync(cpuFile, 'utf8')) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const data = `data=${fixture('datasets', 'catsdogs-2k')}`;
const cases: { name: string; command: string[]; before: number | null; target: number }[] = [
  { name: 'tlpipe --version', command: ['--version'], before: 0.64, target: 0.15 },
  { name: 'tlpipe --help', command: ['--help'], before: null, target: 0.15 },
  { name: 'cached catsdogs run', command: ['run', 'pipelines/catsdogs.yaml', '--set', data], before: 1.39, target: 0.35 },
  { name: 'tlpipe status', command: ['status', 'pipelines/catsdogs.yaml', '--set', data], before: 1.27, target: 0.35 },
];

function main(): void {
  if (!haveFixtures) {
    console.log('startup benchmark: skipped, the shared fixtures (catsdogs-2k, MobileNetV2) are not there');
    return;
  }
  const builds = [makeBuild('new', repoRoot), ...(oldRoot ? [makeBuild('old', path.resolve(oldRoot))] : [])];
  try {
    // The first run computes everything; the timed runs are fully cached.
    for (const b of builds) timeOnce(b, ['run', 'pipelines/catsdogs.yaml', '--set', data]);
    const load = os.loadavg()[0]!;
    console.log(`startup: medians of ${reps} runs each, ${os.availableParallelism()} cores, load average ${load.toFixed(1)} at the start${load > os.availableParallelism() ? ' (loaded: judge the ratios)' : ''}`);
    for (const c of cases) {
      const times = new Map(builds.map((b) => [b.label, { wall: [] as number[], cpu: [] as number[] }]));
      for (let i = 0; i < reps; i++) {
        for (const b of builds) {
          const t = timeOnce(b, c.command);
          times.get(b.label)!.wall.push(t.wall);
          times.get(b.label)!.cpu.push(t.cpu);
        }
      }
      const fmt = (label: string) => {
        const t = times.get(label)!;
        return `${median(t.wall).toFixed(3)} s (cpu ${median(t.cpu).toFixed(3)} s)`;
      };
      let line = `  ${c.name.padEnd(20)} ${fmt('new')}, target < ${c.target} s`;
      if (c.before !== null) line += `, issue's figure before: ${c.before} s (idle)`;
      if (oldRoot) {
        const n = times.get('new')!;
        const o = times.get('old')!;
        line += ` | old build ${fmt('old')}: old/new wall ${(median(o.wall) / median(n.wall)).toFixed(2)}×, cpu ${(median(o.cpu) / median(n.cpu)).toFixed(2)}×`;
      }
      console.log(line);
    }
  } finally {
    for (const b of builds) rmSync(b.project, { recursive: true, force: true });
    rmSync(cpuProbe, { force: true });
  }
}

main();
