// The remote cache end to end: two clones of one project in two folders share
// one remote (a folder, or a real S3 server: s3rver on loopback), and the
// second computes nothing the first computed. Steps that count their runs
// prove it; outputs are compared byte for byte.
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTlpipe, tlpipe } from './support/cli.js';
import { countStepSource } from './support/count-step.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { type S3Server, startS3Server } from './support/s3-server.js';
import { removeDir, tempDir } from './support/tmp.js';

const pipeline = `tlpipe: 1
name: shared
stages:
  first:
    uses: ./steps/count.mjs
    with: {value: 1, file: data/input.txt}
  second:
    uses: ./steps/count.mjs
    inputs: [first]
    with: {value: 2, chunks: "\${chunks}", chunkDelayMs: "\${delay}"}
  third:
    uses: ./steps/count.mjs
    inputs: [second]
    with: {value: 3, out: out/result.txt}
params:
  chunks: 3
  delay: 0
`;

/** A clone of the project in a folder of its own, with its own count log. */
async function clone() {
  const dir = await tempDir({ 'package.json': '{}', 'steps/count.mjs': countStepSource, 'data/input.txt': 'the same input\n', 'p.yaml': pipeline });
  const log = path.join(dir, 'count.log');
  await writeFile(log, '');
  const counted = async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  return { dir, log, counted };
}

type Clone = Awaited<ReturnType<typeof clone>>;

const run = (c: Clone, args: string[], env: Record<string, string> = {}) => tlpipe(['run', 'p.yaml', '--json', ...args], { cwd: c.dir, env: { COUNT_LOG: c.log, ...env } });
const statuses = (stdout: string) => Object.fromEntries((JSON.parse(stdout) as { stages: { name: string; status: string }[] }).stages.map((s) => [s.name, s.status]));

const dirs: string[] = [];
let s3: S3Server;
before(async () => {
  s3 = await startS3Server();
});
after(async () => {
  await s3?.close();
  for (const d of dirs) await removeDir(d);
});

async function tracked<T extends { dir: string }>(p: Promise<T>): Promise<T> {
  const c = await p;
  dirs.push(c.dir);
  return c;
}

test('remote add, list, remove: kept in tlpipe.json without credentials; bad URLs are refused with what to do', async () => {
  const c = await tracked(clone());
  const add = await tlpipe(['remote', 'add', 'team', 's3://tlpipe-cache/projects/shared'], { cwd: c.dir });
  assert.equal(add.code, 0, add.stderr);
  assert.equal(add.stderr, 'Added remote "team" (s3://tlpipe-cache/projects/shared) to tlpipe.json; it is the default.');
  const ci = await tlpipe(['remote', 'add', 'nfs', 'file:///mnt/share/tlpipe', '--read-only'], { cwd: c.dir });
  assert.equal(ci.code, 0, ci.stderr);
  assert.deepEqual(JSON.parse(await readFile(path.join(c.dir, 'tlpipe.json'), 'utf8')), {
    remotes: { team: { url: 's3://tlpipe-cache/projects/shared' }, nfs: { url: 'file:///mnt/share/tlpipe', readOnly: true } },
    defaultRemote: 'team',
  });
  const list = await tlpipe(['remote', 'list'], { cwd: c.dir });
  assert.equal(list.stdout, '* team  s3://tlpipe-cache/projects/shared\n  nfs  file:///mnt/share/tlpipe  (read-only)');

  const creds = await tlpipe(['remote', 'add', 'x', 'https://user:secret@example.com/bucket'], { cwd: c.dir });
  assert.equal(creds.code, 64);
  assert.match(creds.stderr, /carries credentials; never put them in a URL/);
  const scheme = await tlpipe(['remote', 'add', 'x', 'ftp://host/x'], { cwd: c.dir });
  assert.equal(scheme.code, 64);
  assert.match(scheme.stderr, /unsupported scheme "ftp". Use file:\/\/\/absolute\/folder or s3:\/\/bucket\/prefix/);
  const unknown = await run(c, ['--remote', 'nope']);
  assert.equal(unknown.code, 64);
  assert.match(unknown.stderr, /No remote named "nope" \(configured: team, nfs\)/);

  const rm = await tlpipe(['remote', 'remove', 'team'], { cwd: c.dir });
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(JSON.parse(await readFile(path.join(c.dir, 'tlpipe.json'), 'utf8')), { remotes: { nfs: { url: 'file:///mnt/share/tlpipe', readOnly: true } } });
});

for (const kind of ['file', 's3'] as const) {
  describe(`two clones in two folders, one ${kind} remote`, () => {
    let url: string;
    let env: Record<string, string>;
    before(async () => {
      if (kind === 'file') {
        const remote = await tempDir();
        dirs.push(remote);
        url = `file://${remote}`;
        env = {};
      } else {
        url = `s3://${s3.bucket}/two-clones`;
        env = s3.env;
      }
    });

    test('the second clone pulls every stage, runs none, and writes byte-identical outputs', async () => {
      const a = await tracked(clone());
      const b = await tracked(clone());
      for (const c of [a, b]) assert.equal((await tlpipe(['remote', 'add', 'team', url], { cwd: c.dir })).code, 0);

      const first = await run(a, [], env);
      assert.equal(first.code, 0, first.stderr);
      assert.deepEqual(statuses(first.stdout), { first: 'ran', second: 'ran', third: 'ran' });
      assert.doesNotMatch(first.stderr, /warning/);

      const status = await tlpipe(['status', 'p.yaml'], { cwd: b.dir, env });
      assert.equal(status.code, 0, status.stderr);
      assert.deepEqual(status.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s{2,}/).slice(0, 2)), [
        ['first', 'in remote'],
        ['second', 'in remote'],
        ['third', 'in remote'],
      ]);

      const second = await run(b, [], env);
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(statuses(second.stdout), { first: 'pulled', second: 'pulled', third: 'pulled' });
      assert.deepEqual(await b.counted(), [], 'no step ran in the second clone');
      const summary = JSON.parse(second.stdout) as { stages: { fingerprint: string; pulledBytes: number; pullMs: number }[] };
      assert.deepEqual(
        summary.stages.map((s) => s.fingerprint),
        (JSON.parse(first.stdout) as { stages: { fingerprint: string }[] }).stages.map((s) => s.fingerprint),
        'the same fingerprints in both folders',
      );
      assert.ok(summary.stages.every((s) => s.pulledBytes > 0 && s.pullMs >= 0), JSON.stringify(summary.stages));
      assert.equal(await readFile(path.join(b.dir, 'out/result.txt'), 'utf8'), await readFile(path.join(a.dir, 'out/result.txt'), 'utf8'));
      assert.match(second.stderr, /✔ first: pulled \d+ B in [\d.]+ m?s/);

      // The run record says it too.
      const shown = await tlpipe(['show', 'last'], { cwd: b.dir });
      const record = JSON.parse(shown.stdout) as { stages: { status: string; transfer?: { bytes: number } }[] };
      assert.ok(record.stages.every((s) => s.status === 'pulled' && s.transfer!.bytes > 0));

      // Now local: cached, and the remote is not touched.
      const third = await run(b, [], { ...env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
      assert.deepEqual(statuses(third.stdout), { first: 'cached', second: 'cached', third: 'cached' });
      assert.doesNotMatch(third.stderr, /warning/);
    });

    test('--no-remote, --remote-read-only and TLPIPE_REMOTE', async () => {
      const a = await tracked(clone());
      const b = await tracked(clone());
      const c = await tracked(clone());
      const prefix = kind === 'file' ? `${url}-modes` : `${url}-modes`;
      const off = await run(a, ['--set', 'chunks=1', '--no-remote'], { ...env, TLPIPE_REMOTE: prefix });
      assert.deepEqual(statuses(off.stdout), { first: 'ran', second: 'ran', third: 'ran' });
      // Read-only: runs, pushes nothing.
      const ro = await run(b, ['--set', 'chunks=1', '--remote-read-only'], { ...env, TLPIPE_REMOTE: prefix });
      assert.deepEqual(statuses(ro.stdout), { first: 'ran', second: 'ran', third: 'ran' });
      const nothing = await run(c, ['--set', 'chunks=1', '--remote-read-only'], { ...env, TLPIPE_REMOTE: prefix });
      assert.deepEqual(statuses(nothing.stdout), { first: 'ran', second: 'ran', third: 'ran' });
      // `tlpipe push` sends the last run's artifacts; then a reader pulls them.
      const push = await tlpipe(['push'], { cwd: a.dir, env: { ...env, TLPIPE_REMOTE: prefix } });
      assert.equal(push.code, 0, push.stderr);
      assert.match(push.stdout, /^Pushed 3 artifact\(s\), \d+ B of files, to .*; 0 already there\.$/m);
      const d = await tracked(clone());
      const pull = await tlpipe(['pull', 'p.yaml', '--set', 'chunks=1'], { cwd: d.dir, env: { ...env, TLPIPE_REMOTE: prefix } });
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(pull.stdout, /^first: pulled \d+ B in \d+ ms$/m);
      assert.match(pull.stdout, /^Pulled 3 artifact\(s\)/m);
      assert.deepEqual(await d.counted(), []);
      const cached = await run(d, ['--set', 'chunks=1', '--no-remote'], env);
      assert.deepEqual(statuses(cached.stdout), { first: 'cached', second: 'cached', third: 'cached' });
    });

    test('a stage another machine half-finished: its committed chunks are pulled, only the rest is computed', async () => {
      const a = await tracked(clone());
      const b = await tracked(clone());
      const remote = ['--remote', `${url}-chunks`, '--set', 'chunks=8', '--set', 'delay=150'];
      const child = startTlpipe(['run', 'p.yaml', ...remote], { cwd: a.dir, env: { COUNT_LOG: a.log, ...env } });
      // Killed outright once three chunks are committed (and their pushes had time to go).
      for (let i = 0; ; i++) {
        if ((await a.counted()).includes('second:chunk3')) break;
        assert.ok(i < 600, 'the first clone never reached its fourth chunk');
        await new Promise((r) => setTimeout(r, 25));
      }
      child.kill('SIGKILL');
      await child;
      const doneThere = (await a.counted()).filter((l) => l.startsWith('second:chunk')).length;
      const r = await run(b, remote, env);
      assert.equal(r.code, 0, r.stderr);
      const computedHere = (await b.counted()).filter((l) => l.startsWith('second:chunk'));
      assert.ok(computedHere.length < 8 && computedHere.length <= 8 - (doneThere - 1), `computed ${computedHere.join(',')} after ${doneThere} started on the other machine`);
      const text = await readFile(path.join(b.dir, 'out/result.txt'), 'utf8');
      for (let i = 0; i < 8; i++) assert.ok(text.includes(`chunk ${i} of second\n`), text);
    });
  });
}

test('an unreachable remote: a run goes on locally with one warning; pull and push exit 69', async () => {
  const port = await freePort();
  const dead = { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', TLPIPE_REMOTE_TIMEOUT: '2', TLPIPE_REMOTE_RETRIES: '1' };
  const c = await tracked(clone());
  const args = ['--remote', 's3://tlpipe-test/none'];
  const r = await run(c, args, dead);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(statuses(r.stdout), { first: 'ran', second: 'ran', third: 'ran' });
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0]!, /^warning: The remote s3:\/\/tlpipe-test\/none cannot be reached \(.*\); going on without it: stages are computed here and nothing more is pushed\.$/);
  const fresh = await tracked(clone());
  const pull = await tlpipe(['pull', 'p.yaml', ...args], { cwd: fresh.dir, env: dead });
  assert.equal(pull.code, 69, pull.stderr);
  assert.match(pull.stderr, /^The remote s3:\/\/tlpipe-test\/none cannot be reached while pulling/m);
  const push = await tlpipe(['push', ...args], { cwd: c.dir, env: dead });
  assert.equal(push.code, 69, push.stderr);
  // --only a stage whose input is in neither cache: it cannot continue locally.
  const d = await tracked(clone());
  const only = await run(d, [...args, '--only', 'third'], dead);
  assert.equal(only.code, 69, only.stderr);
  assert.match(only.stdout, /"error": "the artifact of \\"second\\" is not in the local cache and the remote s3:\/\/tlpipe-test\/none cannot be reached/);
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe('catsdogs in two clones on real photos', { skip: needsFixtures }, () => {
  test('keys do not depend on the checkout folder or the data mount: the second clone computes zero features', async () => {
    const remote = await tempDir();
    dirs.push(remote);
    const make = async () => {
      const dir = await tempDir({ 'package.json': '{}' });
      dirs.push(dir);
      await mkdir(path.join(dir, 'pipelines'));
      await cp(path.join(repoRoot, 'pipelines', 'catsdogs.yaml'), path.join(dir, 'pipelines', 'catsdogs.yaml'));
      // The data inside each clone, at the same relative place.
      for (const split of ['train', 'test1']) await mkdir(path.join(dir, 'data', 'catsdogs', split), { recursive: true });
      for (let i = 0; i < 12; i++) for (const c of ['cat', 'dog']) await cp(fixture('datasets', 'catsdogs-2k', 'train', `${c}.${i}.jpg`), path.join(dir, 'data', 'catsdogs', 'train', `${c}.${i}.jpg`));
      for (let i = 1; i <= 5; i++) await cp(fixture('datasets', 'catsdogs-2k', 'test1', `${i}.jpg`), path.join(dir, 'data', 'catsdogs', 'test1', `${i}.jpg`));
      return dir;
    };
    const env = { TLPIPE_MODELS: fixture('models'), TLPIPE_REMOTE: `file://${remote}` };
    const args = ['run', 'pipelines/catsdogs.yaml', '--json', '--set', 'epochs=3'];
    const a = await make();
    const first = await tlpipe(args, { cwd: a, env });
    assert.equal(first.code, 0, first.stderr);
    const b = await make();
    const second = await tlpipe(args, { cwd: b, env });
    assert.equal(second.code, 0, second.stderr);
    const st = statuses(second.stdout);
    assert.ok(Object.values(st).every((s) => s === 'pulled'), JSON.stringify(st));
    for (const f of ['submission.csv', 'model.onnx']) {
      assert.ok((await readFile(path.join(a, 'out/catsdogs', f))).equals(await readFile(path.join(b, 'out/catsdogs', f))), `${f} differs`);
    }
    // The manifest names images relative to the project: nothing of clone a's folder.
    const entries = await readdir(path.join(b, '.tlpipe', 'artifacts'));
    for (const e of entries) assert.doesNotMatch(await readFile(path.join(b, '.tlpipe', 'artifacts', e), 'utf8'), new RegExp(a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

    // Data outside both projects (a mounted folder): keyed by content; the
    // manifest is machine-local (computed here), the features are pulled.
    const mount = await tempDir();
    dirs.push(mount);
    await cp(path.join(a, 'data', 'catsdogs'), mount, { recursive: true });
    const outside = [...args, '--set', `data=${mount}`];
    const c1 = await tlpipe(outside, { cwd: a, env });
    assert.equal(c1.code, 0, c1.stderr);
    const mount2 = await tempDir();
    dirs.push(mount2);
    await cp(mount, mount2, { recursive: true });
    const c2 = await tlpipe([...args, '--set', `data=${mount2}`], { cwd: b, env });
    assert.equal(c2.code, 0, c2.stderr);
    const st2 = statuses(c2.stdout);
    assert.equal(st2.dataset, 'ran');
    assert.equal(st2.features, 'pulled', JSON.stringify(st2));
    const fp = (s: string) => (JSON.parse(s) as { stages: { name: string; fingerprint: string }[] }).stages.find((x) => x.name === 'features')!.fingerprint;
    assert.equal(fp(c1.stdout), fp(c2.stdout));
  });
});

test('gc --remote: entries no kept run names go first, then files no kept entry needs; what is kept still pulls', async () => {
  const remote = await tempDir();
  dirs.push(remote);
  const env = { TLPIPE_REMOTE: `file://${remote}`, TLPIPE_REMOTE_GC_GRACE: '0' };
  const a = await tracked(clone());
  const old = await run(a, ['--set', 'chunks=1'], env);
  assert.equal(old.code, 0, old.stderr);
  // Another value: every stage's output differs, so the old run's files are not shared.
  const recent = await run(a, ['--set', 'chunks=1', '--set', 'first.value=9'], env);
  assert.equal(recent.code, 0, recent.stderr);
  const count = async (dir: string) => (await readdir(path.join(remote, dir), { recursive: true }).catch(() => [] as string[])).filter((n) => /\.json$|-\d+$|\.chunk$/.test(String(n))).length;
  assert.equal(await count('ac'), 6);
  assert.equal(await count('runs'), 2);

  const dry = await tlpipe(['gc', '--remote', `file://${remote}`, '--keep-last', '1', '--dry-run'], { cwd: a.dir, env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^Would free \d+ k?B in file:\/\/.*: 3 entries, 3 files, \d+ chunks, 0 queue job results, 1 run records removed; 3 entries of 1 runs kept\.$/);
  assert.equal(await count('ac'), 6, 'a dry run deletes nothing');

  const gc = await tlpipe(['gc', '--remote', `file://${remote}`, '--keep-last', '1'], { cwd: a.dir, env });
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /^Freed \d+ k?B in file:\/\/.*: 3 entries, 3 files, \d+ chunks, 0 queue job results, 1 run records removed; 3 entries of 1 runs kept\.$/);
  assert.equal(await count('ac'), 3);
  assert.equal(await count('cas'), 3);

  // The kept run's artifacts still come whole to a new clone.
  const b = await tracked(clone());
  const pulled = await run(b, ['--set', 'chunks=1', '--set', 'first.value=9'], env);
  assert.deepEqual(statuses(pulled.stdout), { first: 'pulled', second: 'pulled', third: 'pulled' });
  assert.deepEqual(await b.counted(), []);
  // Without a remote to name, gc --remote says what to do.
  const none = await tlpipe(['gc', '--remote', 'nowhere'], { cwd: b.dir });
  assert.equal(none.code, 64);
  assert.match(none.stderr, /No remote named "nowhere"/);
});
