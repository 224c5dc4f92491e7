// Fault trials for the CUDA device choice and for carrying files to a GPU
// machine in checksummed parts (bench/gpu/pack.sh, unpack.sh).
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from './fixtures.js';
import { SkipTrial, childEnv, cli, entries, expectClean, photoSet, pool, project, rethrowFirst, scratchDir, trial, type CliRun } from './faults.js';

const script = (name: string) => path.join(repoRoot, 'bench', 'gpu', name);
const bash = async (...args: string[]) => {
  const r = await execa('bash', args, { reject: false, stdin: 'ignore', all: true });
  return { code: r.exitCode ?? -1, out: String(r.all) };
};

const PROVIDER_DIR = ['onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64'];
const PROVIDER_FILE = 'libonnxruntime_providers_cuda.so';

const isInside = (child: string, parent: string) => {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/** `from` (a symlink is followed to the folder it names) copied to `to` as hard links: nothing is copied. */
async function hardLinkTree(from: string, to: string): Promise<void> {
  const real = await fs.realpath(from);
  const r = await execa('cp', ['-al', real, to], { reject: false });
  if (r.exitCode !== 0) throw new SkipTrial(`cannot hard-link ${from} into ${path.dirname(to)}: ${String(r.stderr).split('\n')[0]}`);
}

/**
 * A copy of the built app at `root` (hard links: nothing is copied) whose
 * onnxruntime-node has a provider file that cannot load. A symlinked
 * node_modules, or a symlinked package inside it, is copied too, never kept as
 * a link: the broken provider must land in the copy, not in the real package.
 */
export async function appWithBrokenProvider(root = repoRoot, into?: string): Promise<string> {
  const app = into ?? (await scratchDir('app-broken-provider'));
  for (const dir of ['node_modules', 'dist']) await hardLinkTree(path.join(root, dir), path.join(app, dir));
  await fs.cp(path.join(root, 'schemas'), path.join(app, 'schemas'), { recursive: true });
  await fs.copyFile(path.join(root, 'package.json'), path.join(app, 'package.json'));
  let bin = path.join(app, 'node_modules');
  for (const part of PROVIDER_DIR) {
    bin = path.join(bin, part);
    if (!(await fs.lstat(bin)).isSymbolicLink()) continue;
    const target = await fs.realpath(bin);
    await fs.unlink(bin);
    await hardLinkTree(target, bin);
  }
  // Every folder on the way is now the copy's own: anything written there stays in the copy.
  const realApp = await fs.realpath(app);
  if (!isInside(await fs.realpath(bin), realApp)) throw new Error(`${bin} resolves outside the copy ${realApp}; refusing to write a provider there`);
  const provider = path.join(bin, PROVIDER_FILE);
  // An installed provider is a hard link here: unlinking it removes the copy's name only.
  await fs.rm(provider, { force: true });
  // A new file, never one of the hard links, so the real package is untouched.
  await fs.writeFile(provider, 'not a shared library\n', { flag: 'wx' });
  return app;
}

async function runWith(app: string, dir: string, args: string[]): Promise<CliRun> {
  const r = await execa('node', [path.join(app, 'dist', 'src', 'bin.cjs'), 'run', 'pipelines/catsdogs.yaml', ...args], {
    cwd: dir,
    env: childEnv(),
    reject: false,
    stdin: 'ignore',
    timeout: 120_000,
  });
  return { code: r.exitCode ?? undefined, signal: r.signal ?? undefined, stdout: String(r.stdout), stderr: String(r.stderr), timedOut: r.timedOut === true, seconds: 0 };
}

export async function deviceTrials(): Promise<void> {
  const data = await photoSet(6, 2);
  const cases: [string, () => Promise<string>][] = [
    [
      "device 'cuda' without the CUDA provider",
      async () => {
        if (process.platform !== 'linux') throw new SkipTrial('the CUDA provider exists for Linux only');
        const dir = await project();
        const r = await cli(['run', 'pipelines/catsdogs.yaml', '--set', `data=${data}`, '--set', 'device=cuda'], { cwd: dir, timeoutMs: 120_000 });
        expectClean(r, 1, "device 'cuda' without a provider");
        if (!/CUDA .*provider/.test(r.stderr + r.stdout) || !/npm rebuild onnxruntime-node/.test(r.stderr + r.stdout)) throw new Error(`no install instructions: ${r.stderr.slice(-800)}`);
        return 'exit 1: the provider is not installed, with the install command';
      },
    ],
    [
      "device 'auto' with a CUDA provider that cannot load",
      async () => {
        if (process.platform !== 'linux' || process.arch !== 'x64') throw new SkipTrial('needs the Linux x64 package layout');
        const app = await appWithBrokenProvider();
        const dir = await project();
        const auto = await runWith(app, dir, ['--set', `data=${data}`, '--set', 'device=auto']);
        expectClean(auto, 0, "device 'auto' with a broken provider");
        const said = (auto.stderr + auto.stdout).split('\n').filter((l) => /device auto: the CUDA provider of onnxruntime-node is installed but cannot run here .*running on the CPU/.test(l));
        if (said.length < 2) throw new Error(`features and train did not both say they fall back: ${auto.stderr.slice(-800)}`);
        const devices = (await entries(path.join(dir, '.tlpipe'))).filter((e) => ['features', 'train'].includes(e.entry.stage)).map((e) => (e.entry.value as { device?: string }).device);
        if (devices.join() !== 'cpu,cpu') throw new Error(`features and train recorded devices ${devices.join()}, expected cpu, cpu`);
        const cuda = await runWith(app, await project(), ['--set', `data=${data}`, '--set', 'device=cuda']);
        expectClean(cuda, 1, "device 'cuda' with a broken provider");
        if (!/cannot load/.test(cuda.stderr + cuda.stdout)) throw new Error(`device cuda did not say the provider cannot load: ${cuda.stderr.slice(-800)}`);
        return 'auto fell back to the CPU and said why; cuda refused: exit 1';
      },
    ],
  ];
  rethrowFirst(await pool(cases, 2, ([name, body]) => trial('device', name, body)));
}

export async function carryTrials(): Promise<void> {
  const root = await scratchDir('carry');
  const src = path.join(root, 'src');
  await fs.mkdir(path.join(src, 'lib'), { recursive: true });
  await fs.writeFile(path.join(src, 'lib', 'provider.so'), randomBytes(2 * 1024 * 1024 + 17));
  const parts = path.join(root, 'parts');
  const packed = await bash(script('pack.sh'), src, parts, '--part-bytes', String(512 * 1024), '--compress', 'none');
  if (packed.code !== 0) throw new Error(`pack.sh failed: ${packed.out}`);
  const names = (await fs.readdir(parts)).filter((n) => n.includes('.part-')).sort();

  async function carried(label: string, which: string[]): Promise<string> {
    const dir = path.join(root, label);
    await fs.mkdir(dir, { recursive: true });
    for (const f of ['SHA256SUMS', ...which]) await fs.copyFile(path.join(parts, f), path.join(dir, f));
    return dir;
  }
  const flip = async (file: string, at: number) => {
    const b = await fs.readFile(file);
    b[at] = b[at]! ^ 0x20;
    await fs.writeFile(file, b);
  };
  const noDest = async (dest: string) => {
    if (await fs.stat(dest).then(() => true, () => false)) throw new Error(`${dest} was written although a part was bad`);
  };

  const cases: [string, () => Promise<string>][] = [
    [
      'a part damaged in transfer',
      async () => {
        const from = await carried('damaged', names);
        await flip(path.join(from, names[1]!), 1000);
        const stash = path.join(root, 'stash-damaged');
        const r = await bash(script('unpack.sh'), 'stash', from, stash);
        if (r.code !== 1 || !new RegExp(`${names[1]!.replace(/\./g, '\\.')} is damaged`).test(r.out)) throw new Error(`stash did not refuse the damaged part: ${r.out}`);
        const j = await bash(script('unpack.sh'), 'join', stash, path.join(root, 'dest-damaged'));
        if (j.code !== 1) throw new Error(`join went ahead: ${j.out}`);
        await noDest(path.join(root, 'dest-damaged'));
        return `exit 1: ${names[1]} named, the ${names.length - 1} good parts kept, nothing extracted`;
      },
    ],
    [
      'a part rotting in the stash after its check',
      async () => {
        const stash = path.join(root, 'stash-rot');
        const s = await bash(script('unpack.sh'), 'stash', await carried('rot', names), stash);
        if (s.code !== 0) throw new Error(s.out);
        await flip(path.join(stash, names[0]!), 7);
        const j = await bash(script('unpack.sh'), 'join', stash, path.join(root, 'dest-rot'));
        if (j.code !== 1 || !/damaged part/.test(j.out)) throw new Error(`join did not catch the rot: ${j.out}`);
        await noDest(path.join(root, 'dest-rot'));
        return 'exit 1: join checks every part again';
      },
    ],
    [
      'a part never carried',
      async () => {
        const stash = path.join(root, 'stash-missing');
        await bash(script('unpack.sh'), 'stash', await carried('missing', names.slice(0, -1)), stash);
        const j = await bash(script('unpack.sh'), 'join', stash, path.join(root, 'dest-missing'));
        if (j.code !== 1 || !j.out.includes(names.at(-1)!)) throw new Error(`join did not name the missing part: ${j.out}`);
        await noDest(path.join(root, 'dest-missing'));
        return `exit 1: names ${names.at(-1)}`;
      },
    ],
  ];
  rethrowFirst(await pool(cases, 2, ([name, body]) => trial('carry', name, body)));
}
