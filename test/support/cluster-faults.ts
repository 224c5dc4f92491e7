// The fault suite's trials of work spread over machines (run --queue and
// tlpipe worker): a worker killed or frozen mid-chunk, Redis losing
// everything, a worker with a model that differs by one byte, two runs of one
// pipeline at once, the run itself killed. Each ends with the features and
// outputs of an uninterrupted one-machine run, byte for byte.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { featuresFiles, killWorkers, resultFile, resultWorkers, startWorker, stopWorker } from './cluster.js';
import {
  type CliRun,
  type Outputs,
  type Summary,
  Lost,
  afterChunks,
  chunkRows,
  cli,
  expectClean,
  expectSameOutputs,
  finish,
  project,
  readOutputs,
  scratchDir,
  start,
  summaryOf,
  trial,
} from './faults.js';
import { needsFixtures } from './fixtures.js';
import { needsRedis, type RedisServer, startRedis } from './redis.js';
import { startS3Server } from './s3-server.js';
import { Queue } from 'bullmq';
import { PREFIX } from '../../src/cluster/connection.js';
import { MEMBER_JOB_FORMAT, type MemberJobData, memberJobId, MEMBERS_QUEUE } from '../../src/cluster/sweep-job.js';
import { FINGERPRINT_FORMAT } from '../../src/runner/fingerprint.js';
import { builtinSteps } from '../../src/steps/index.js';

interface Reference {
  data: string;
  store: string;
  summary: Summary;
  outputs: Outputs;
}

export interface ClusterTrialDeps {
  reference(): Promise<Reference>;
  runArgs(data: string, ...extra: string[]): string[];
  boundMs: number;
}

const GROUP = 'several machines';
/** Short job locks, so that a dead or frozen worker loses its job within seconds. */
const LOCK = { TLPIPE_QUEUE_LOCK_MS: '2000' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  redis: RedisServer;
  remoteDir: string;
  remote: string;
  dir: string;
  store: string;
  models: () => Promise<string>;
}

async function withCluster<T>(body: (s: Setup) => Promise<T>): Promise<T> {
  const redis = await startRedis();
  try {
    const remoteDir = await scratchDir('remote');
    const dir = await project();
    return await body({ redis, remoteDir, remote: `file://${remoteDir}`, dir, store: path.join(dir, '.tlpipe'), models: () => scratchDir('models') });
  } finally {
    await killWorkers();
    await redis.stop();
  }
}

/** Throws Lost unless the run's features and outputs are the reference's, byte for byte. */
async function expectReference(r: CliRun, dir: string, ref: Reference, what: string): Promise<Summary> {
  expectClean(r, 0, what);
  const summary = summaryOf(r);
  expectSameOutputs(await readOutputs(dir, summary), ref.outputs, what);
  const got = await featuresFiles(path.join(dir, '.tlpipe'));
  const want = await featuresFiles(ref.store);
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Lost(`${what}: features differ from a one-machine run's (${JSON.stringify(got)} vs ${JSON.stringify(want)})`);
  return summary;
}

const jobOf = (by: Map<string, string>, prefix: string) => [...by.entries()].find(([id]) => id.startsWith(prefix));
const payloadOf = (bytes: Buffer) => bytes.subarray(12 + bytes.readUInt32LE(8));

export function clusterTrials(deps: ClusterTrialDeps): void {
  const queued = (data: string, s: Setup, ...extra: string[]) => deps.runArgs(data, '--queue', s.redis.url, '--remote', s.remote, ...extra);

  describe('several machines: workers and Redis fail while a queued run works', { skip: needsFixtures || needsRedis }, () => {
    test('a worker killed with SIGKILL mid-chunk: its job is handed to another, the result is byte-identical', { timeout: 300_000 }, async () => {
      await trial(GROUP, 'worker SIGKILLed mid-chunk', () =>
        withCluster(async (s) => {
          const ref = await deps.reference();
          const w = startWorker('doomed', { queue: s.redis.url, remote: s.remote, dataRoot: ref.data, cwd: s.dir, models: await s.models(), env: LOCK });
          await w.waitFor(/worker doomed: queue/);
          const run = start(queued(ref.data, s), { cwd: s.dir, env: LOCK, timeoutMs: deps.boundMs });
          const started = await w.waitFor(/job (fx-[0-9a-f]{12})…: started/);
          await sleep(100);
          w.child.kill('SIGKILL');
          await expectReference(await finish(run), s.dir, ref, 'the run whose worker was killed');
          const [job, by] = jobOf(await resultWorkers(s.remoteDir), started[1]!) ?? [];
          if (!job) throw new Lost(`the job the killed worker held (${started[1]}…) has no result in the remote`);
          assert.notEqual(by, 'doomed');
          return `the killed worker's job ${started[1]}… was redelivered and computed by ${by}; features and outputs identical to a one-machine run`;
        }),
      );
    });

    test('a worker frozen (SIGSTOP) past its lock, then resumed: its late result changes nothing', { timeout: 300_000 }, async () => {
      await trial(GROUP, 'worker SIGSTOPped past its lock, then SIGCONT', () =>
        withCluster(async (s) => {
          const ref = await deps.reference();
          const w = startWorker('frozen', { queue: s.redis.url, remote: s.remote, dataRoot: ref.data, cwd: s.dir, models: await s.models(), env: LOCK });
          await w.waitFor(/worker frozen: queue/);
          const run = start(queued(ref.data, s), { cwd: s.dir, env: LOCK, timeoutMs: deps.boundMs });
          const started = await w.waitFor(/job (fx-[0-9a-f]{12})…: started/);
          // Into its first job's work (the model loading, the first batch), then frozen.
          await sleep(150);
          process.kill(w.child.pid!, 'SIGSTOP');
          await expectReference(await finish(run), s.dir, ref, 'the run whose worker froze');
          const found = jobOf(await resultWorkers(s.remoteDir), started[1]!);
          if (!found) throw new Lost(`the frozen worker's job ${started[1]}… has no result in the remote`);
          assert.notEqual(found[1], 'frozen');
          const file = resultFile(s.remoteDir, found[0]);
          const before = await fs.readFile(file);
          process.kill(w.child.pid!, 'SIGCONT');
          const late = await w.waitFor(new RegExp(`job ${started[1]}…: (?!started)(.*)`), 60_000);
          const after = await fs.readFile(file);
          if (!after.equals(before)) throw new Lost(`the late worker rewrote the result of ${started[1]}…`);
          // A fresh clone served from the remote: the same features still.
          const clone = await project();
          const again = await cli(queued(ref.data, s), { cwd: clone, env: LOCK, timeoutMs: deps.boundMs });
          const summary = await expectReference(again, clone, ref, 'a fresh clone after the late result');
          // The remote cache serves the whole stage (pulled), or the queue's results its chunks.
          const f = summary.stages.find((x) => x.name === 'features')!;
          assert.ok(f.status === 'pulled' || summary.metrics.features!['chunks from remote'] === summary.metrics.features!.chunks, JSON.stringify(f));
          const code = await stopWorker(w);
          assert.equal(code, 0, `the resumed worker's exit on SIGTERM:\n${w.output().slice(-1500)}`);
          return `job ${started[1]}… was recomputed by ${found[1]} while the worker was frozen; once resumed it said "${late[1]!.slice(0, 60)}", the stored result kept its bytes, a fresh clone got identical features from the remote; SIGTERM then stopped the worker (exit 0)`;
        }),
      );
    });

    test('Redis killed and restarted empty mid-run: the run re-adds what the remote lacks and finishes', { timeout: 300_000 }, async () => {
      await trial(GROUP, 'Redis SIGKILLed, restarted empty', () =>
        withCluster(async (s) => {
          const ref = await deps.reference();
          const w = startWorker('survivor', { queue: s.redis.url, remote: s.remote, dataRoot: ref.data, cwd: s.dir, models: await s.models(), env: LOCK });
          await w.waitFor(/worker survivor: queue/);
          const run = start(queued(ref.data, s), { cwd: s.dir, env: LOCK, timeoutMs: deps.boundMs });
          await afterChunks(s.store, 1).arm(run, () => run.exitCode !== null && run.exitCode !== undefined);
          const held = await chunkRows(s.store);
          await s.redis.kill();
          await sleep(1500);
          await s.redis.restart();
          const r = await finish(run);
          await expectReference(r, s.dir, ref, 'the run that lost Redis');
          const waited = /waiting for Redis at [^\n]*/.exec(r.stderr)?.[0];
          const readded = /(\d+) chunk jobs were not in Redis and not in the remote: added again/.exec(r.stderr);
          await stopWorker(w);
          if (!waited && !readded) return `the run finished before Redis went down (${held} rows committed): not hit`;
          return `killed with ${held} rows committed${waited ? `; the run said "${waited.slice(0, 70)}…"` : ''}${readded ? `; it re-added ${readded[1]} jobs Redis had lost` : ''}; features and outputs identical`;
        }),
      );
    });

    test('a worker whose model file differs by one byte: refused, named, none of its work accepted', { timeout: 300_000 }, async () => {
      await trial(GROUP, 'worker with a model one byte off', () =>
        withCluster(async (s) => {
          const ref = await deps.reference();
          const entries = await fs.readdir(path.join(ref.store, 'artifacts'));
          let sha = '';
          for (const e of entries) {
            const entry = JSON.parse(await fs.readFile(path.join(ref.store, 'artifacts', e), 'utf8')) as { stage: string; files: Record<string, { sha256: string }> };
            if (entry.stage === 'freeze') sha = entry.files['features.onnx']!.sha256;
          }
          const models = await s.models();
          const copy = await fs.readFile(path.join(ref.store, 'objects', sha.slice(0, 2), sha));
          copy[Math.floor(copy.length / 2)]! ^= 0x01;
          await fs.writeFile(path.join(models, `${sha}.onnx`), copy);
          const bad = startWorker('bad', { queue: s.redis.url, remote: s.remote, dataRoot: ref.data, cwd: s.dir, models, env: LOCK });
          await bad.waitFor(/worker bad: queue/);
          const run = start(queued(ref.data, s), { cwd: s.dir, env: { ...LOCK, TLPIPE_QUEUE_LOCAL_JOBS: '0' }, timeoutMs: deps.boundMs });
          const refused = await bad.waitFor(/worker bad refuses the jobs of queue [0-9a-f]{16}: (its copy of the model .*)/);
          // Only now a worker that may take the jobs.
          const good = startWorker('good', { queue: s.redis.url, remote: s.remote, dataRoot: ref.data, cwd: s.dir, models: await s.models(), env: LOCK });
          const r = await finish(run);
          await expectReference(r, s.dir, ref, 'the run beside a mismatched worker');
          assert.match(r.stderr, /worker bad refused this stage's jobs: its copy of the model \S+ has sha256 [0-9a-f]{12}…, the job needs [0-9a-f]{12}…/);
          const by = await resultWorkers(s.remoteDir);
          const fromBad = [...by.values()].filter((w) => w === 'bad').length;
          if (fromBad) throw new Lost(`${fromBad} results in the remote were computed by the mismatched worker`);
          if (/job fx-[0-9a-f]{12}…: started/.test(bad.output())) throw new Lost('the mismatched worker started a job');
          const listed = await cli(['workers', '--queue', s.redis.url], { cwd: s.dir, timeoutMs: 30_000 });
          expectClean(listed, 0, 'tlpipe workers');
          assert.match(listed.stdout, /^ {2}refuses queue [0-9a-f]{16}: its copy of the model/m);
          await Promise.all([stopWorker(bad), stopWorker(good)]);
          return `refused at once ("${refused[1]!.slice(0, 70)}…"), named by the run and by tlpipe workers; all ${by.size} results by "good"; features identical`;
        }),
      );
    });

    test('two runs of one pipeline at once in two clones: each chunk computed once', { timeout: 300_000 }, async () => {
      await trial(GROUP, '2 queued runs at once', () =>
        withCluster(async (s) => {
          const ref = await deps.reference();
          const other = await project();
          const runs = [start(queued(ref.data, s), { cwd: s.dir, env: LOCK, timeoutMs: deps.boundMs }), start(queued(ref.data, s), { cwd: other, env: LOCK, timeoutMs: deps.boundMs })];
          const [a, b] = await Promise.all(runs.map((c) => finish(c)));
          const ma = (await expectReference(a!, s.dir, ref, 'run A')).metrics.features!;
          const mb = (await expectReference(b!, other, ref, 'run B')).metrics.features!;
          const n = (m: Record<string, unknown>, k: string) => Number(m[k] ?? 0);
          const chunks = n(ma, 'chunks');
          const computed = n(ma, 'chunks computed here') + n(mb, 'chunks computed here');
          if (computed > chunks) throw new Lost(`${computed} chunk computations for ${chunks} chunks`);
          assert.equal(computed, chunks, 'every chunk computed by one of the runs');
          for (const m of [ma, mb]) assert.equal(n(m, 'chunks from remote') + n(m, 'chunks computed here') + n(m, 'chunks computed elsewhere'), chunks);
          return `${chunks} chunks: run A computed ${n(ma, 'chunks computed here')}, run B ${n(mb, 'chunks computed here')}; both byte-identical`;
        }),
      );
    });

    test('the remote (an S3 server) killed mid-run: the run computes what is missing itself, the worker waits and stops cleanly', { timeout: 300_000 }, async () => {
      await trial(GROUP, 'S3 remote killed mid queued run', async () => {
        const redis = await startRedis();
        const s3 = await startS3Server();
        try {
          const ref = await deps.reference();
          const dir = await project();
          const store = path.join(dir, '.tlpipe');
          const remote = `s3://${s3.bucket}/queued`;
          // Short transfer limits, so that a dead endpoint is noticed in seconds.
          const env = { ...LOCK, ...s3.env, TLPIPE_REMOTE_TIMEOUT: '2', TLPIPE_REMOTE_RETRIES: '0' };
          const w = startWorker('stranded', { queue: redis.url, remote, dataRoot: ref.data, cwd: dir, models: await scratchDir('models'), env });
          await w.waitFor(/worker stranded: queue/);
          const run = start(deps.runArgs(ref.data, '--queue', redis.url, '--remote', remote), { cwd: dir, env, timeoutMs: deps.boundMs });
          await afterChunks(store, 1).arm(run, () => run.exitCode !== null && run.exitCode !== undefined);
          const held = await chunkRows(store);
          await s3.kill();
          const r = await finish(run);
          await expectReference(r, dir, ref, 'the run whose remote went away');
          const fellBack = /the remote \S+ cannot be reached \([^\n]*\); this run computes the (\d+) chunks still missing itself/.exec(r.stderr);
          if (w.child.exitCode !== null && w.child.exitCode !== undefined) throw new Lost(`the worker died with the remote (exit ${w.child.exitCode}):\n${w.output().slice(-1500)}`);
          const code = await stopWorker(w);
          assert.equal(code, 0, `the worker's exit on SIGTERM:\n${w.output().slice(-1500)}`);
          if (!fellBack) return `the run finished before it needed the remote again (${held} rows committed when the server was killed): not hit`;
          return `killed with ${held} rows committed; the run said it computes the ${fellBack[1]} missing chunks itself; features and outputs identical; the worker stayed up and stopped with exit 0`;
        } finally {
          await killWorkers();
          await s3.close();
          await redis.stop();
        }
      });
    });

    test('a forged sweep member (its record altered, its fingerprint kept) planted in Redis: the worker refuses it, names itself, pushes nothing', { timeout: 120_000 }, async () => {
      await trial(GROUP, 'forged sweep member job', () =>
        withCluster(async (s) => {
          const version = builtinSteps.find((x) => x.type === 'head.train')!.version;
          const fingerprint = 'ab'.repeat(32);
          const data: MemberJobData = {
            format: MEMBER_JOB_FORMAT,
            label: 'forged',
            stages: [{ name: 'train', uses: 'head.train', params: {}, fingerprint, record: { format: FINGERPRINT_FORMAT, step: { type: 'head.train', version }, params: { planted: true }, inputs: {}, dependencies: null } }],
          };
          const w = startWorker('honest', { queue: s.redis.url, remote: s.remote, dataRoot: s.dir, cwd: s.dir, models: await s.models(), env: LOCK });
          await w.waitFor(/worker honest: queue/);
          const queue = new Queue(MEMBERS_QUEUE, { connection: { host: '127.0.0.1', port: s.redis.port }, prefix: PREFIX });
          try {
            await queue.add('member', data, { jobId: memberJobId(data), attempts: 5 });
            const said = await w.waitFor(/job sm-[0-9a-f]{12}… \(sweep member forged\): (.*does not hash to its fingerprint.*)/, 60_000);
            let state = '';
            for (let i = 0; i < 50 && state !== 'failed'; i++, await sleep(100)) state = await queue.getJobState(memberJobId(data));
            if (state !== 'failed') throw new Lost(`the forged job is ${state}, not failed at once`);
            const job = await queue.getJob(memberJobId(data));
            assert.equal(job?.attemptsMade, 1, 'refused without retries');
            assert.match(String(job?.failedReason), /^worker honest: /);
            const planted = await fs.stat(path.join(s.remoteDir, 'ac', `${fingerprint}.json`)).then(() => true, () => false);
            if (planted) throw new Lost('an entry was pushed under the forged fingerprint');
            assert.equal(await stopWorker(w), 0, w.output().slice(-1500));
            return `refused on its first attempt ("${said[1]!.slice(0, 70)}…"), failed with the worker's name, no entry under the fingerprint; the worker stopped with exit 0`;
          } finally {
            await queue.close();
          }
        }),
      );
    });

    test('the queued run itself killed (SIGKILL) and rerun: it resumes from what it and the remote hold', { timeout: 300_000 }, async () => {
      await trial(GROUP, 'queued run SIGKILLed, rerun', () =>
        withCluster(async (s) => {
          const ref = await deps.reference();
          const run = start(queued(ref.data, s), { cwd: s.dir, env: LOCK, timeoutMs: deps.boundMs });
          await afterChunks(s.store, 2).arm(run, () => run.exitCode !== null && run.exitCode !== undefined);
          run.kill('SIGKILL');
          await finish(run);
          const rows = await chunkRows(s.store);
          const held = (await resultWorkers(s.remoteDir)).size;
          const again = await cli(queued(ref.data, s), { cwd: s.dir, env: LOCK, timeoutMs: deps.boundMs });
          const m = (await expectReference(again, s.dir, ref, 'the rerun')).metrics.features!;
          const computed = Number(m['chunks computed here'] ?? 0) + Number(m['chunks computed elsewhere'] ?? 0);
          const total = Math.ceil(Number(ref.summary.metrics.features!.images) / 8);
          if (computed > total - held) throw new Lost(`the rerun computed ${computed} chunks though the remote held ${held} of ${total}`);
          return `killed with ${rows} rows committed and ${held} results in the remote; the rerun computed ${computed} chunk(s) of ${total}; identical`;
        }),
      );
    });
  });
}
