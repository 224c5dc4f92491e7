// `run --queue` and `tlpipe worker`: job ids from content, results verified
// before they are accepted, a worker's features byte-identical to a
// one-machine run's, clear errors. The fault trials (kills, a frozen worker,
// Redis lost, a mismatched model) are in the fault suite.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { dataRootOf } from '../src/cluster/coordinator.js';
import { encodeResult, FEATURE_JOB_FORMAT, type FeatureJobData, featureJobId, verifyResult } from '../src/cluster/feature-job.js';
import { encodeFeatureChunk } from '../src/features/chunks.js';
import { featuresFiles, killWorkers, resultWorkers, startWorker, stopWorker } from './support/cluster.js';
import { cli, expectClean, photoSet, project, removeScratch, type Summary, scratchDir, summaryOf } from './support/faults.js';
import { needsFixtures } from './support/fixtures.js';
import { needsRedis, startRedis } from './support/redis.js';
import { startS3Server } from './support/s3-server.js';

after(async () => {
  await killWorkers();
  await removeScratch();
});

const hex = (n: number) => n.toString(16).padStart(64, '0');

function jobData(keys: string[], width = 3): FeatureJobData {
  return {
    format: FEATURE_JOB_FORMAT,
    requirements: { format: FEATURE_JOB_FORMAT, model: { sha256: hex(9), size: 10 }, runtime: { onnxruntime: '1', sharp: '2', libvips: '3', jpeg: '4', device: 'cpu' } },
    spec: { resize: null } as never,
    augmentSeed: 0,
    featureWidth: width,
    dataRoot: '/data',
    images: keys.map((k, i) => ({ key: k, hash: k, path: `img${i}.jpg`, copy: 0 })),
  };
}

describe('job ids and results', () => {
  test('a job id is the same for the same content, wherever the data lives, and differs when anything that changes the bytes does', () => {
    const a = jobData([hex(1), hex(2)]);
    assert.equal(featureJobId(a), featureJobId({ ...a, dataRoot: '/elsewhere' } as FeatureJobData));
    assert.match(featureJobId(a), /^fx-[0-9a-f]{64}$/);
    assert.notEqual(featureJobId(a), featureJobId(jobData([hex(1), hex(3)])));
    assert.notEqual(featureJobId(a), featureJobId({ ...a, augmentSeed: 1 }));
    assert.notEqual(featureJobId(a), featureJobId({ ...a, requirements: { ...a.requirements, model: { sha256: hex(8), size: 10 } } }));
    assert.notEqual(featureJobId(a), featureJobId({ ...a, requirements: { ...a.requirements, runtime: { ...a.requirements.runtime, onnxruntime: '9' } } }));
  });

  test('a result is accepted only when its format, checksum, width and keys are exactly the job\'s', () => {
    const data = jobData([hex(1), hex(2), hex(3)]);
    const id = featureJobId(data);
    const rows: [string, Float32Array][] = [
      [hex(1), new Float32Array([1, 2, 3])],
      [hex(2), new Float32Array([4, 5, 6])],
    ];
    const good = encodeResult({ job: id, width: 3, count: 2, failed: [{ key: hex(3), reason: 'corrupt' }], worker: 'w' }, encodeFeatureChunk(rows, 3));
    const ok = verifyResult(good, id, data);
    assert.ok(ok.ok);
    assert.deepEqual([...ok.rows.get(hex(2))!], [4, 5, 6]);

    const flipped = Buffer.from(good);
    flipped[flipped.length - 1]! ^= 1;
    assert.deepEqual(verifyResult(flipped, id, data), { ok: false, problem: 'checksum mismatch' });
    assert.match(String((verifyResult(good, featureJobId(jobData([hex(7)])), data) as { problem: string }).problem), /result of job/);
    assert.match(String((verifyResult(good, id, { ...data, featureWidth: 4 }) as { problem: string }).problem), /width 3/);
    assert.match(String((verifyResult(good.subarray(0, 20), id, data) as { problem: string }).problem), /truncated|header/);
    assert.match(String((verifyResult(Buffer.from('hello world, not a result'), id, data) as { problem: string }).problem), /magic/);
    const missing = encodeResult({ job: id, width: 3, count: 2, failed: [], worker: 'w' }, encodeFeatureChunk(rows, 3));
    assert.match(String((verifyResult(missing, id, data) as { problem: string }).problem), /missing/);
    const extra = encodeResult({ job: id, width: 3, count: 3, failed: [], worker: 'w' }, encodeFeatureChunk([...rows, [hex(5), new Float32Array(3)]], 3));
    assert.match(String((verifyResult(extra, id, data) as { problem: string }).problem), /did not ask for/);
  });

  test('images are named relative to the project when inside it, else to their common folder', () => {
    assert.equal(dataRootOf(['/p/data/a/1.jpg', '/p/data/b/2.jpg'], '/p'), '/p');
    assert.equal(dataRootOf(['/d/x/train/1.jpg', '/d/x/test1/2.jpg'], '/p'), '/d/x');
    assert.equal(dataRootOf(['/d/x/train/1.jpg', '/d/x/train/2.jpg'], '/p'), '/d/x/train');
  });
});

const queueArgs = (data: string, queue: string, remote: string, ...extra: string[]) => [
  'run', 'pipelines/catsdogs.yaml', '--json', '--set', `data=${data}`, '--set', 'features.chunkSize=8', '--set', 'epochs=3', '--queue', queue, '--remote', remote, ...extra,
];

describe('run --queue with a worker', { skip: needsFixtures || needsRedis }, () => {
  test('a worker computes chunks, the run assembles features byte-identical to a one-machine run, tlpipe workers shows it, SIGTERM stops it cleanly', { timeout: 300_000 }, async () => {
    const redis = await startRedis();
    try {
      const data = await photoSet(10, 6);
      const remoteDir = await scratchDir('remote');
      const remote = `file://${remoteDir}`;
      const alone = await project();
      const r0 = await cli(['run', 'pipelines/catsdogs.yaml', '--json', '--set', `data=${data}`, '--set', 'features.chunkSize=8', '--set', 'epochs=3'], { cwd: alone, timeoutMs: 200_000 });
      expectClean(r0, 0, 'the one-machine run');

      const dir = await project();
      const w = startWorker('w1', { queue: redis.url, remote, dataRoot: data, cwd: dir, models: await scratchDir('models') });
      await w.waitFor(/worker w1: queue/);
      const r = await cli(queueArgs(data, redis.url, remote), { cwd: dir, timeoutMs: 200_000 });
      expectClean(r, 0, 'the queued run');
      const m = summaryOf(r).metrics.features!;
      assert.equal(m.chunks, 4, JSON.stringify(m));
      assert.equal(Number(m['chunks computed here']) + Number(m['chunks computed elsewhere']), 4);
      assert.deepEqual(await featuresFiles(path.join(dir, '.tlpipe')), await featuresFiles(path.join(alone, '.tlpipe')));
      const by = await resultWorkers(remoteDir);
      assert.equal(by.size, 4);
      assert.match(r.stderr, /chunk jobs of 8 images on queue [0-9a-f]{16}/);

      const listed = await cli(['workers', '--queue', redis.url], { cwd: dir, timeoutMs: 30_000 });
      expectClean(listed, 0, 'tlpipe workers');
      assert.match(listed.stdout, /^w1 {2}cpu {2}[\d.]+ images\/s {2}\d+ jobs done {2}holds: idle$/m);
      assert.match(listed.stdout, /queue [0-9a-f]{16} \(model [0-9a-f]{12}…\): 0 waiting, 0 running, 0 delayed, 0 failed, 4 completed/);

      // Run again: the stage is cached; with the store gone, every chunk comes from the remote.
      const again = await project();
      const r2 = await cli(queueArgs(data, redis.url, remote), { cwd: again, timeoutMs: 200_000 });
      expectClean(r2, 0, 'a second clone');
      // The remote cache serves the whole stage (pulled), or the queue its chunks: nothing is computed.
      const s2 = summaryOf(r2);
      const f2 = s2.stages.find((x) => x.name === 'features')!;
      assert.ok(f2.status === 'pulled' || s2.metrics.features!['chunks from remote'] === 4, JSON.stringify(f2));
      assert.deepEqual(await featuresFiles(path.join(again, '.tlpipe')), await featuresFiles(path.join(alone, '.tlpipe')));

      assert.equal(await stopWorker(w), 0, w.output());
      assert.match(w.output(), /SIGTERM: handing back the job in hand and stopping[^]*worker w1 stopped/);

      // gc --remote collects what the queue left: the job results (past the grace period); the model stays while the freeze entry names it.
      const gc = await cli(['gc', '--remote', remote], { cwd: dir, timeoutMs: 60_000, env: { TLPIPE_REMOTE_GC_GRACE: '0' } });
      expectClean(gc, 0, 'gc --remote');
      assert.match(gc.stdout, /, 4 queue job results, 0 run records removed;/);
      assert.deepEqual(await fs.readdir(path.join(remoteDir, 'jobs')), []);
      assert.deepEqual((await fs.readdir(remoteDir)).filter((d) => !['ac', 'cas', 'chunks', 'runs', 'jobs', 'tmp'].includes(d)), []);
      const model = summaryOf(r).stages.find((x) => x.name === 'freeze')!;
      assert.ok(model, 'a freeze stage');
      const entry = JSON.parse(await fs.readFile(path.join(remoteDir, 'ac', `${model.fingerprint}.json`), 'utf8')) as { entry: { files: Record<string, { sha256: string; size: number }> } };
      const onnx = entry.entry.files['features.onnx']!;
      await fs.access(path.join(remoteDir, 'cas', onnx.sha256.slice(0, 2), `${onnx.sha256}-${onnx.size}`));
    } finally {
      await redis.stop();
    }
  });

  test("a worker whose copy of an image differs from the manifest's hash is refused that chunk; the run computes it itself", { timeout: 300_000 }, async () => {
    const redis = await startRedis();
    try {
      const data = await photoSet(10, 6);
      // The worker's machine has another photo where the manifest has cat.3.jpg.
      const other = await scratchDir('other-data');
      await fs.cp(data, other, { recursive: true, verbatimSymlinks: true });
      await fs.rm(path.join(other, 'train', 'cat.3.jpg'));
      await fs.copyFile(path.join(data, 'train', 'dog.4.jpg'), path.join(other, 'train', 'cat.3.jpg'));
      const remoteDir = await scratchDir('remote');
      const dir = await project();
      const w = startWorker('odd', { queue: redis.url, remote: `file://${remoteDir}`, dataRoot: other, cwd: dir, models: await scratchDir('models') });
      await w.waitFor(/worker odd: queue/);
      const r = await cli(queueArgs(data, redis.url, `file://${remoteDir}`), { cwd: dir, timeoutMs: 200_000, env: { TLPIPE_QUEUE_LOCAL_JOBS: '0' } });
      expectClean(r, 0, 'the run');
      assert.match(r.stderr, /failed on the queue \(worker odd: .*cat\.3\.jpg has sha256 [0-9a-f]{12}…, the dataset's manifest says [0-9a-f]{12}…/);
      assert.match(r.stderr, /this run computes it itself/);
      // It takes no more of this queue's jobs, and says why.
      assert.match(w.output(), /worker odd refuses the jobs of queue [0-9a-f]{16}: its data differs from the run's: .*cat\.3\.jpg/);
      const afterRefusal = w.output().split(/refuses the jobs of queue/)[1] ?? '';
      assert.doesNotMatch(afterRefusal, /: started/, w.output());
      const alone = await project();
      const r0 = await cli(['run', 'pipelines/catsdogs.yaml', '--json', '--set', `data=${data}`, '--set', 'features.chunkSize=8', '--set', 'epochs=3'], { cwd: alone, timeoutMs: 200_000 });
      expectClean(r0, 0, 'the one-machine run');
      assert.deepEqual(await featuresFiles(path.join(dir, '.tlpipe')), await featuresFiles(path.join(alone, '.tlpipe')));
      await stopWorker(w);
    } finally {
      await redis.stop();
    }
  });
});

describe('run --queue: images inside the project, the run started elsewhere', { skip: needsFixtures || needsRedis }, () => {
  test('jobs name images relative to the project (as ctx.inputPath resolves them), a worker finds them under its --data-root', { timeout: 300_000 }, async () => {
    const redis = await startRedis();
    try {
      const dir = await project();
      await photoSet(10, 6, path.join(dir, 'data', 'catsdogs'));
      // The worker's machine holds the same files at another place.
      const theirs = await scratchDir('worker-root');
      await fs.cp(path.join(dir, 'data'), path.join(theirs, 'data'), { recursive: true, verbatimSymlinks: true });
      const remoteDir = await scratchDir('remote');
      const w = startWorker('mapped', { queue: redis.url, remote: `file://${remoteDir}`, dataRoot: theirs, cwd: theirs, models: await scratchDir('models') });
      await w.waitFor(/worker mapped: queue/);
      const elsewhere = await scratchDir('cwd');
      const args = ['run', path.join(dir, 'pipelines', 'catsdogs.yaml'), '--json', '--set', 'features.chunkSize=8', '--set', 'epochs=3'];
      const r = await cli([...args, '--queue', redis.url, '--remote', `file://${remoteDir}`], { cwd: elsewhere, timeoutMs: 200_000, env: { TLPIPE_QUEUE_LOCAL_JOBS: '0' } });
      expectClean(r, 0, 'the queued run started outside the project');
      assert.ok(r.stderr.includes(`images are named relative to ${dir} (workers: --data-root)`), r.stderr);
      assert.equal(summaryOf(r).metrics.features!['chunks computed elsewhere'], 4);
      const alone = await project();
      await photoSet(10, 6, path.join(alone, 'data', 'catsdogs'));
      const r0 = await cli(args.map((a) => (a === path.join(dir, 'pipelines', 'catsdogs.yaml') ? 'pipelines/catsdogs.yaml' : a)), { cwd: alone, timeoutMs: 200_000 });
      expectClean(r0, 0, 'the one-machine run');
      assert.deepEqual(await featuresFiles(path.join(dir, '.tlpipe')), await featuresFiles(path.join(alone, '.tlpipe')));
      await stopWorker(w);
    } finally {
      await killWorkers();
      await redis.stop();
    }
  });
});

describe('run --queue with a sweep', { skip: needsFixtures || needsRedis }, () => {
  test("the other combinations' training and evaluation are jobs with ids from their fingerprints; a worker computes them; the sweep's results are a one-machine sweep's", { timeout: 300_000 }, async () => {
    const redis = await startRedis();
    try {
      // The data inside the project: its dataset artifact names images relative to it and can be shared.
      const dir = await project();
      await photoSet(10, 6, path.join(dir, 'data', 'catsdogs'));
      const remoteDir = await scratchDir('remote');
      const remote = `file://${remoteDir}`;
      const sweep = ['--set', 'features.chunkSize=8', '--set', 'epochs=3', '--set', 'weightDecay=0.001,0.01,0.1'];
      const args = ['run', 'pipelines/catsdogs.yaml', '--json', ...sweep, '--queue', redis.url, '--remote', remote];
      const w = startWorker('trainer', { queue: redis.url, remote, dataRoot: dir, cwd: dir, models: await scratchDir('models') });
      await w.waitFor(/worker trainer: queue/);
      const r = await cli(args, { cwd: dir, timeoutMs: 200_000, env: { TLPIPE_QUEUE_LOCAL_JOBS: '0' } });
      expectClean(r, 0, 'the queued sweep');
      assert.match(r.stderr, /2 sweep members \(training and evaluation of weightDecay=0\.01; weightDecay=0\.1\) added to queue sweep-members/);
      assert.match(r.stderr, /sweep members: 2 of 2 through the queue/);
      const ids = [...w.output().matchAll(/job (sm-[0-9a-f]{12})… \(sweep member (weightDecay=[\d.]+)\): computed train, evaluate/g)].map((m) => m[2]);
      assert.deepEqual(ids.sort(), ['weightDecay=0.01', 'weightDecay=0.1'], w.output());
      const runs = (JSON.parse(r.stdout) as { runs: Summary[] }).runs;
      assert.equal(runs.length, 3);
      for (const run of runs.slice(1)) {
        const st = Object.fromEntries(run.stages.map((x) => [x.name, x.status]));
        assert.equal(st.train, 'pulled', JSON.stringify(st));
        assert.equal(st.evaluate, 'pulled', JSON.stringify(st));
      }
      const alone = await project();
      await photoSet(10, 6, path.join(alone, 'data', 'catsdogs'));
      const r0 = await cli(['run', 'pipelines/catsdogs.yaml', '--json', ...sweep], { cwd: alone, timeoutMs: 200_000 });
      expectClean(r0, 0, 'the one-machine sweep');
      const runs0 = (JSON.parse(r0.stdout) as { runs: Summary[] }).runs;
      const fps = (rs: Summary[]) => rs.map((x) => Object.fromEntries(x.stages.map((st) => [st.name, st.fingerprint])));
      assert.deepEqual(fps(runs), fps(runs0));
      assert.deepEqual(runs.map((x) => x.metrics.evaluate), runs0.map((x) => x.metrics.evaluate));
      assert.deepEqual(runs.map((x) => x.metrics.train), runs0.map((x) => x.metrics.train));
      const listed = await cli(['workers', '--queue', redis.url], { cwd: dir, timeoutMs: 30_000 });
      expectClean(listed, 0, 'tlpipe workers');
      assert.match(listed.stdout, /^queue sweep-members: 0 waiting, 0 running, 0 delayed, 0 failed, 2 completed$/m);

      // No worker at all, and a run that only coordinates: it computes the members itself, it does not wait for nobody.
      await stopWorker(w);
      const lonely = await project();
      await photoSet(10, 6, path.join(lonely, 'data', 'catsdogs'));
      const l = await cli(['run', 'pipelines/catsdogs.yaml', '--json', '--set', 'features.chunkSize=8', '--set', 'epochs=3', '--set', 'weightDecay=0.002,0.02', '--queue', redis.url, '--remote', remote], { cwd: lonely, timeoutMs: 200_000, env: { TLPIPE_QUEUE_LOCAL_JOBS: '0' } });
      expectClean(l, 0, 'a sweep with nobody to take its members');
      assert.match(l.stderr, /no live worker takes sweep members; this run computes them itself/);
      assert.match(l.stderr, /sweep members: 1 of 1 through the queue/);

      // Run again: nothing is added, the members are in the remote and cached here.
      const again = await cli(args, { cwd: dir, timeoutMs: 200_000, env: { TLPIPE_QUEUE_LOCAL_JOBS: '0' } });
      expectClean(again, 0, 'the sweep again');
      assert.doesNotMatch(again.stderr, /sweep members/);
    } finally {
      await killWorkers();
      await redis.stop();
    }
  });
});

describe('run --queue over a named S3 remote, signed', { skip: needsFixtures || needsRedis }, () => {
  test('workers and the run name the remote from tlpipe.json; with TLPIPE_REMOTE_KEY results are signed, and a worker without the key refuses, naming itself', { timeout: 300_000 }, async () => {
    const redis = await startRedis();
    const s3 = await startS3Server();
    try {
      const data = await photoSet(10, 6);
      const config = JSON.stringify({ remotes: { team: { url: `s3://${s3.bucket}/cluster` } } });
      const key = { TLPIPE_REMOTE_KEY: 'a-team-key-of-32-characters-long' };
      const dir = await project(['catsdogs.yaml'], { 'tlpipe.json': config });
      const signed = startWorker('signed', { queue: redis.url, remote: 'team', dataRoot: data, cwd: dir, models: await scratchDir('models'), env: { ...s3.env, ...key } });
      const keyless = startWorker('keyless', { queue: redis.url, remote: 'team', dataRoot: data, cwd: dir, models: await scratchDir('models'), env: s3.env });
      await signed.waitFor(/worker signed: queue \S+, remote team,/);
      await keyless.waitFor(/worker keyless: queue/);
      // The run only coordinates: every chunk is the signed worker's.
      const r = await cli(queueArgs(data, redis.url, 'team'), { cwd: dir, timeoutMs: 200_000, env: { ...s3.env, ...key, TLPIPE_QUEUE_LOCAL_JOBS: '0' } });
      expectClean(r, 0, 'the queued run');
      const m = summaryOf(r).metrics.features!;
      assert.equal(m.chunks, 4, JSON.stringify(m));
      assert.equal(m['chunks computed elsewhere'], 4, `${JSON.stringify(m)}\n${signed.output()}`);
      assert.match(keyless.output(), /worker keyless refuses the jobs of queue [0-9a-f]{16}: the run signs its results and checks them with TLPIPE_REMOTE_KEY, which is not set here/);
      assert.doesNotMatch(keyless.output(), /: started/);
      assert.match(r.stderr, /worker keyless refused this stage's jobs: the run signs its results/);
      const alone = await project();
      const r0 = await cli(['run', 'pipelines/catsdogs.yaml', '--json', '--set', `data=${data}`, '--set', 'features.chunkSize=8', '--set', 'epochs=3'], { cwd: alone, timeoutMs: 200_000 });
      expectClean(r0, 0, 'the one-machine run');
      assert.deepEqual(await featuresFiles(path.join(dir, '.tlpipe')), await featuresFiles(path.join(alone, '.tlpipe')));

      // The results are signed in the bucket: a run with another key refuses every one and computes them itself.
      const other = await project(['catsdogs.yaml'], { 'tlpipe.json': config });
      await Promise.all([stopWorker(signed), stopWorker(keyless)]);
      const r2 = await cli(queueArgs(data, redis.url, 'team', '--no-remote'), { cwd: other, timeoutMs: 200_000, env: { ...s3.env, TLPIPE_REMOTE_KEY: 'another-key-of-32-characters-lon' } });
      expectClean(r2, 64, '--queue with --no-remote');
      assert.match(r2.stderr, /--queue needs a remote where workers put their results/);
      const r3 = await cli(queueArgs(data, redis.url, 'team'), { cwd: other, timeoutMs: 200_000, env: { ...s3.env, TLPIPE_REMOTE_KEY: 'another-key-of-32-characters-lon' } });
      expectClean(r3, 0, 'a run with another key');
      assert.match(r3.stderr, /the remote's result of job fx-[0-9a-f]{12}… is not usable \(its signature does not match TLPIPE_REMOTE_KEY/);
      assert.deepEqual(await featuresFiles(path.join(other, '.tlpipe')), await featuresFiles(path.join(alone, '.tlpipe')));
    } finally {
      await killWorkers();
      await s3.close();
      await redis.stop();
    }
  });
});

describe('run --queue: errors', { skip: needsFixtures || needsRedis }, () => {
  test('Redis unreachable: the run says what it waits for and exits 69 after TLPIPE_QUEUE_TIMEOUT', { timeout: 120_000 }, async () => {
    const redis = await startRedis();
    const url = redis.url;
    await redis.stop();
    const data = await photoSet(10, 6);
    const dir = await project();
    const r = await cli(queueArgs(data, url, `file://${await scratchDir('remote')}`), { cwd: dir, timeoutMs: 100_000, env: { TLPIPE_QUEUE_TIMEOUT: '3' } });
    expectClean(r, 69, 'the run without Redis');
    assert.match(r.stderr, /waiting for Redis at redis:\/\/127\.0\.0\.1:\d+\/0 \(.*ECONNREFUSED.*\); reconnecting, giving up after 3 s/);
    assert.match(r.stderr, /could not be reached in 3 s/);
  });

  test('--queue without a remote, and a bad queue URL, are usage errors', { timeout: 60_000 }, async () => {
    const dir = await project();
    const a = await cli(['run', 'pipelines/catsdogs.yaml', '--queue', 'redis://127.0.0.1:1/0'], { cwd: dir, timeoutMs: 30_000 });
    expectClean(a, 64, '--queue without --remote');
    assert.match(a.stderr, /--queue needs a remote/);
    const b = await cli(['worker', '--queue', 'http://x', '--remote', 'file:///tmp'], { cwd: dir, timeoutMs: 30_000 });
    expectClean(b, 64, 'a bad queue URL');
    assert.match(b.stderr, /only redis:\/\/, rediss:\/\/ and unix:\/\/ URLs/);
  });
});
