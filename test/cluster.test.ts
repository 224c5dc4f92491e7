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
import { cli, expectClean, photoSet, project, removeScratch, scratchDir, summaryOf } from './support/faults.js';
import { needsFixtures } from './support/fixtures.js';
import { needsRedis, startRedis } from './support/redis.js';

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
