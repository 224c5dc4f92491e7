// `npm run build`, after tsc: bundles the command line into dist/cli/ for
// start-up speed. Node's ES module loader pays for every file it resolves and
// reads, and the pure-JS libraries load as hundreds of small files (TypeBox
// alone ~120, about 0.1 s); one bundle with lazily loaded chunks loads in a
// fraction of that. The bundle is built from tsc's output, so it is the same
// code the tests import from dist/src/. Native and rarely used packages stay
// external: they are loaded from node_modules, lazily, as before.
//
// Layout: every entry point and chunk sits flat in dist/cli/, so a worker
// thread's URL relative to its module ('./inference-worker.js') resolves to the
// bundled worker from whichever chunk creates it. Worker scripts are found by
// that reference in tsc's output (test/startup.test.ts checks each has its
// bundled twin): a new worker needs no change here.
import { build } from 'esbuild';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from './package-root.js';

const dist = path.join(packageRoot, 'dist');
const outdir = path.join(dist, 'cli');

/** Loaded by path at run time, native, or only by some commands: not worth bundling. */
const external = ['sharp', 'onnxruntime-node', 'bullmq', 'ioredis', '@aws-sdk/*', 'playwright-core', 's3rver'];

/** Worker-thread scripts that modules of `dir` start by a URL relative to themselves. */
function workerScripts(dir: string): string[] {
  const found = new Set<string>();
  for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
    if (!rel.endsWith('.js')) continue;
    const text = readFileSync(path.join(dir, rel), 'utf8');
    for (const m of text.matchAll(/new Worker\(new URL\('\.\/([\w.-]+\.js)', import\.meta\.url\)/g)) found.add(path.join(path.dirname(rel), m[1]!));
  }
  return [...found].sort();
}

const src = path.join(dist, 'src');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: ['cli.js', ...workerScripts(src)].map((f) => path.join(src, f)),
  outdir,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  sourcemap: 'linked',
  logLevel: 'warning',
  // Bundled CommonJS packages call require(); give the ES module bundle one.
  banner: { js: "import { createRequire as __tlpipeCreateRequire } from 'node:module'; const require = __tlpipeCreateRequire(import.meta.url);" },
});
console.log(`wrote ${path.relative(process.cwd(), outdir) || outdir}`);
