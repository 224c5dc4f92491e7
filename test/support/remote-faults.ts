// Fault trials for the remote cache: what a remote can do wrong (objects,
// entries, chunks and signatures tampered with; a server stopped mid-pull and
// mid-push; a push killed at a seeded moment; two pushers at once; a wrong
// key) against a real ArtifactStore and real backends (a folder, s3rver).
// Every trial checks the same promise: nothing wrong enters the local store
// (a miss with a warning, the stage computed here), nothing is lost, and the
// remote never holds an entry naming a missing object.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { keys, type RemoteBackend } from '../../src/remote/backend.js';
import { RemoteCache } from '../../src/remote/cache.js';
import { openBackend } from '../../src/remote/open.js';
import { signingKeyFrom } from '../../src/remote/signing.js';
import { parseRemoteUrl } from '../../src/remote/url.js';
import { canonicalJson, fingerprintOf, FINGERPRINT_FORMAT, type FingerprintRecord } from '../../src/runner/fingerprint.js';
import { type ArtifactEntry, ArtifactStore, encodeChunk, entryChecksum } from '../../src/runner/store.js';
import { Lost, random, scratchDir, seedFor } from './faults.js';
import { type S3Server, startS3Server } from './s3-server.js';

export interface RemoteSetup {
  url: string;
  env: Record<string, string>;
}

export interface Side {
  store: ArtifactStore;
  cache: RemoteCache;
  warnings: string[];
}

/** A store and a remote cache over `url`, warnings collected. */
export async function side(setup: RemoteSetup, options: { key?: string; readOnly?: boolean; store?: ArtifactStore } = {}): Promise<Side> {
  const store = options.store ?? (await ArtifactStore.open(await scratchDir('remote-store')));
  const warnings: string[] = [];
  const env = { ...process.env, ...setup.env, TLPIPE_REMOTE_KEY: options.key ?? '', TLPIPE_REMOTE_TIMEOUT: '20', TLPIPE_REMOTE_RETRIES: '1' };
  const cache = new RemoteCache(() => openBackend(parseRemoteUrl(setup.url), env), store, {
    name: setup.url,
    readOnly: options.readOnly ?? false,
    signing: signingKeyFrom(env),
    warn: (m) => warnings.push(m),
    streamRetries: 1,
    backoffMs: 50,
  });
  return { store, cache, warnings };
}

export async function rawBackend(setup: RemoteSetup): Promise<RemoteBackend> {
  return openBackend(parseRemoteUrl(setup.url), { ...process.env, ...setup.env, TLPIPE_REMOTE_TIMEOUT: '20', TLPIPE_REMOTE_RETRIES: '1' });
}

/** Commits a fresh artifact (a seeded large file and a small one) and returns its entry. */
export async function artifact(store: ArtifactStore, label: string, bigBytes = 3_000_000): Promise<ArtifactEntry> {
  const dir = await store.scratch('make');
  const rng = random(seedFor(label));
  const big = Buffer.alloc(bigBytes);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(Math.floor(rng.next() * 2 ** 32) >>> 0, i);
  await fs.writeFile(path.join(dir, 'features.bin'), big.subarray(0, bigBytes - (bigBytes % 4)));
  await fs.writeFile(path.join(dir, 'summary.json'), JSON.stringify({ label }));
  const record: FingerprintRecord = { format: FINGERPRINT_FORMAT, step: { type: 'test.remote', version: 1 }, params: { label, nonce: randomBytes(8).toString('hex') }, inputs: {}, dependencies: null };
  const entry = await store.commit(dir, {
    fingerprint: fingerprintOf(record),
    record,
    stage: label,
    createdAt: new Date().toISOString(),
    durationMs: 1,
    value: { label },
    metrics: {},
    publish: [],
    chunkScopes: [],
  });
  await fs.rm(dir, { recursive: true, force: true });
  return entry;
}

/** The same artifact as `entry`, as another machine would commit it (another time, same files). */
export async function sameArtifactElsewhere(from: ArtifactStore, entry: ArtifactEntry, to: ArtifactStore): Promise<ArtifactEntry> {
  const dir = await to.scratch('copy');
  for (const [name, f] of Object.entries(entry.files)) await fs.copyFile(from.objectPath(f.sha256), path.join(dir, name));
  const { files: _f, format: _v, checksum: _c, ...rest } = entry;
  const other = await to.commit(dir, { ...rest, createdAt: new Date(Date.now() + 1000).toISOString(), durationMs: entry.durationMs + 7 });
  await fs.rm(dir, { recursive: true, force: true });
  return other;
}

async function readAll(b: RemoteBackend, key: string): Promise<Buffer> {
  const s = await b.get(key);
  assert.ok(s, `${key} is not in the remote`);
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Every entry in the remote names objects that are there with their size: the invariant of push. */
export async function remoteProblems(setup: RemoteSetup, own?: string): Promise<string[]> {
  const b = await rawBackend(setup);
  const problems: string[] = [];
  try {
    // Entries first, then their objects: objects go up before entries, so an
    // entry seen here must find its objects (other trials push meanwhile).
    for (const info of await b.list('ac/')) {
      const stream = await b.get(info.key);
      if (!stream) continue; // removed since the listing (a reader dropped a damaged one)
      const parts: Buffer[] = [];
      for await (const c of stream) parts.push(c as Buffer);
      let env: { entry?: ArtifactEntry };
      try {
        env = JSON.parse(Buffer.concat(parts).toString('utf8')) as { entry: ArtifactEntry };
      } catch {
        continue; // a trial's deliberately damaged entry
      }
      // Another tamper trial running beside this one damages its object on purpose until its reader drops the entry.
      if (env.entry?.stage?.startsWith('tamper object ') && env.entry.fingerprint !== own) continue;
      for (const [name, f] of Object.entries(env.entry?.files ?? {})) {
        const there = await b.head(keys.object(f.sha256, f.size));
        if (there?.size !== f.size && (await b.head(info.key))) problems.push(`${info.key} names "${name}", missing from the remote`);
      }
    }
  } finally {
    b.close();
  }
  return problems;
}

/** Checks that a failed pull left the local store without the artifact and without scratch. */
async function nothingWrongLocally(s: Side, entry: ArtifactEntry, what: string): Promise<void> {
  const local = await s.store.lookup(entry.fingerprint, 'full');
  if (local.found) throw new Lost(`${what}: the damaged artifact entered the local store`);
  const tmp = await fs.readdir(path.join(s.store.root, 'tmp'));
  if (tmp.length) throw new Error(`${what}: scratch left in the local store: ${tmp.join(', ')}`);
}

export type Tamper = 'object byte flipped' | 'object truncated' | 'object extended' | 'object missing' | 'entry value altered' | 'entry forged with a valid checksum' | 'entry signed with another key' | 'entry unsigned';

/**
 * Pushes an artifact, damages the remote copy, pulls it elsewhere: a miss with
 * a warning, nothing enters the local store; the local result pushed again
 * heals the remote, and a third machine pulls it byte for byte.
 */
export async function tamperTrial(setup: RemoteSetup, tamper: Tamper): Promise<string> {
  const key = tamper.startsWith('entry signed') || tamper === 'entry unsigned' || tamper === 'entry forged with a valid checksum' ? 'team-key-0123456789abcdef' : undefined;
  const pushKey = tamper === 'entry signed with another key' ? 'another-key-0123456789abcdef' : tamper === 'entry unsigned' ? undefined : key;
  const a = await side(setup, { key: pushKey });
  const entry = await artifact(a.store, `tamper ${tamper} ${setup.url}`);
  const pushed = await a.cache.push(entry);
  assert.ok(pushed.pushed, JSON.stringify(pushed) + a.warnings.join('\n'));
  const b = await rawBackend(setup);
  const rng = random(seedFor(`tamper ${tamper}`));
  const big = entry.files['features.bin']!;
  const objKey = keys.object(big.sha256, big.size);
  const entryKey = keys.entry(entry.fingerprint);
  try {
    switch (tamper) {
      case 'object byte flipped': {
        const data = await readAll(b, objKey);
        const at = rng.int(0, data.length - 1);
        data[at] = data[at]! ^ (1 << rng.int(0, 7));
        await b.put(objKey, data);
        break;
      }
      case 'object truncated':
        await b.put(objKey, (await readAll(b, objKey)).subarray(0, rng.int(0, big.size - 1)));
        break;
      case 'object extended':
        await b.put(objKey, Buffer.concat([await readAll(b, objKey), Buffer.from('x')]));
        break;
      case 'object missing':
        await b.delete([objKey]);
        break;
      case 'entry value altered': {
        const text = (await readAll(b, entryKey)).toString('utf8');
        // The value only (not the record): the checksum must catch it.
        await b.put(entryKey, Buffer.from(text.replace('"value":{"label":"tamper', '"value":{"label":"TAMPER')));
        break;
      }
      case 'entry forged with a valid checksum': {
        // Someone with write access but not the key plants other content under this fingerprint.
        const planted = Buffer.from('planted results');
        const sha = (await import('node:crypto')).createHash('sha256').update(planted).digest('hex');
        await b.put(keys.object(sha, planted.length), planted);
        const env = JSON.parse((await readAll(b, entryKey)).toString('utf8')) as { entry: ArtifactEntry; hmac?: string };
        const forged: ArtifactEntry = { ...env.entry, files: { ...env.entry.files, 'features.bin': { sha256: sha, size: planted.length } } };
        forged.checksum = entryChecksum(forged);
        await b.put(entryKey, Buffer.from(JSON.stringify({ 'tlpipe-remote': 1, entry: forged, hmac: env.hmac })));
        break;
      }
      case 'entry signed with another key':
      case 'entry unsigned':
        break;
    }
  } finally {
    b.close();
  }

  const reader = await side(setup, { key });
  const r = await reader.cache.pull(entry.fingerprint);
  if (r.pulled) throw new Lost(`${tamper}: the damaged artifact was pulled`);
  await nothingWrongLocally(reader, entry, tamper);
  const expected =
    tamper === 'entry value altered'
      ? /does not match its checksum/
      : tamper === 'entry forged with a valid checksum' || tamper === 'entry signed with another key'
        ? /signature that does not match TLPIPE_REMOTE_KEY/
        : tamper === 'entry unsigned'
          ? /is not signed/
          : tamper === 'object missing'
            ? /is missing/
            : tamper === 'object byte flipped'
              ? /does not match its sha256/
              : /bytes/;
  if (!reader.warnings.some((w) => expected.test(w))) throw new Error(`${tamper}: no clear warning (${reader.warnings.join(' | ') || 'none'})`);

  // The machine that computes it here pushes it again: the remote heals.
  const healer = await side(setup, { key });
  const mine = await sameArtifactElsewhere(a.store, entry, healer.store);
  const again = await healer.cache.push(mine);
  if (!again.pushed) throw new Error(`${tamper}: the local result did not replace the damaged entry (${again.reason}; ${healer.warnings.join(' | ')})`);
  const third = await side(setup, { key });
  const ok = await third.cache.pull(entry.fingerprint);
  if (!ok.pulled) throw new Error(`${tamper}: after healing, the artifact still cannot be pulled (${ok.reason}; ${third.warnings.join(' | ')})`);
  const got = await fs.readFile(third.store.objectPath(big.sha256));
  const want = await fs.readFile(a.store.objectPath(big.sha256));
  if (!got.equals(want)) throw new Lost(`${tamper}: the healed artifact differs`);
  const problems = await remoteProblems(setup, entry.fingerprint);
  if (problems.length) throw new Lost(`${tamper}: ${problems.join('; ')}`);
  for (const s of [a, reader, healer, third]) s.cache.close();
  return `${reader.warnings[0]!.replace(/ \(.*$/, '').slice(0, 90)}…; healed by the next push`;
}

export type ChunkTamper = 'chunk byte flipped' | 'chunk signed with another key';

/** Shared chunks: a damaged or foreign-signed one is not used. */
export async function chunkTamperTrial(setup: RemoteSetup, tamper: ChunkTamper): Promise<string> {
  const key = 'team-key-0123456789abcdef';
  const a = await side(setup, { key: tamper === 'chunk signed with another key' ? 'another-key-0123456789abcdef' : key });
  const scope = `scope-${randomBytes(4).toString('hex')}`;
  const good = encodeChunk(Buffer.from('vectors 0..7'));
  await a.cache.pushChunk(scope, good);
  if (tamper === 'chunk byte flipped') {
    const b = await rawBackend(setup);
    const [info] = await b.list(keys.chunkPrefix(scope));
    const data = await readAll(b, info!.key);
    data[data.length - 2] = data[data.length - 2]! ^ 4;
    await b.put(info!.key, data);
    b.close();
  }
  const reader = await side(setup, { key });
  const pulled = await reader.cache.pullChunks(scope, new Set());
  if (pulled.length) throw new Lost(`${tamper}: a bad chunk was handed to the step`);
  if (!reader.warnings.some((w) => /saved chunk of work .* (is damaged|signature)/.test(w))) throw new Error(`${tamper}: no clear warning (${reader.warnings.join(' | ')})`);
  a.cache.close();
  reader.cache.close();
  return reader.warnings[0]!.replace(/^A saved chunk of work in the remote \S+ \(\S+\) /, 'chunk ').slice(0, 90);
}

/**
 * The S3 server killed while a large object streams in (or up): the transfer
 * gives up with one warning, the local store (or the remote) holds nothing
 * partial, and once the server is back the transfer succeeds.
 */
export async function serverStoppedTrial(during: 'pull' | 'push'): Promise<string> {
  // A server of its own: the other trials keep theirs running.
  const server = await startS3Server('tlpipe-stopped');
  try {
    return await stoppedTrialOn({ url: `s3://${server.bucket}/stopped`, env: server.env }, server, during);
  } finally {
    await server.close();
  }
}

async function stoppedTrialOn(setup: RemoteSetup, server: S3Server, during: 'pull' | 'push'): Promise<string> {
  const rng = random(seedFor(`server stopped ${during}`));
  const size = 24_000_000;
  const a = await side(setup);
  const entry = await artifact(a.store, `stopped ${during} ${randomBytes(4).toString('hex')}`, size);
  const stopAt = rng.int(10, 80) / 100;
  let killed: Promise<void> | undefined;
  const killAt = (done: number, total: number) => {
    if (!killed && done >= total * stopAt) killed = server.kill();
  };
  let detail: string;
  if (during === 'pull') {
    const pushed = await a.cache.push(entry);
    assert.ok(pushed.pushed, a.warnings.join('\n'));
    const b = await side(setup);
    const r = await b.cache.pull(entry.fingerprint, killAt);
    await killed;
    await server.restart();
    if (!killed) throw new Error('the pull finished before the server could be stopped');
    if (r.pulled) {
      // It came through before the kill took effect: it must be whole.
      const local = await b.store.lookup(entry.fingerprint, 'full');
      if (!local.found) throw new Lost('pulled, but the local artifact does not verify');
      detail = `stopped at ${Math.round(stopAt * 100)} %, but the last bytes were already sent: pulled whole`;
    } else {
      await nothingWrongLocally(b, entry, 'server stopped mid-pull');
      if (!b.warnings.some((w) => /cannot be reached/.test(w))) throw new Error(`no clear warning: ${b.warnings.join(' | ')}`);
      detail = `stopped at ${Math.round(stopAt * 100)} % of ${size / 1e6} MB: a miss, one warning, nothing partial kept`;
    }
    const c = await side(setup);
    const again = await c.cache.pull(entry.fingerprint);
    if (!again.pulled) throw new Error(`after the restart the pull still fails: ${again.reason} ${c.warnings.join(' | ')}`);
    b.cache.close();
    c.cache.close();
  } else {
    const r = await a.cache.push(entry, killAt);
    await killed;
    await server.restart();
    if (!killed) throw new Error('the push finished before the server could be stopped');
    const problems = await remoteProblems(setup);
    if (problems.length) throw new Lost(`after a push stopped by the server: ${problems.join('; ')}`);
    if (r.pushed) detail = `stopped at ${Math.round(stopAt * 100)} %, after the last byte: pushed whole`;
    else {
      if (!a.warnings.some((w) => /cannot be reached/.test(w))) throw new Error(`no clear warning: ${a.warnings.join(' | ')}`);
      detail = `stopped at ${Math.round(stopAt * 100)} % of ${size / 1e6} MB: warned, no entry pushed, no entry names a missing object`;
    }
    // The same machine, a later run (its remote was given up on for the rest of the first).
    const b = await side(setup, { store: a.store });
    const again = await b.cache.push(entry);
    const c = await side(setup);
    if (!(await c.cache.pull(entry.fingerprint)).pulled) throw new Error(`after the restart the artifact cannot be pushed and pulled: ${again.reason} ${b.warnings.join(' | ')}`);
    b.cache.close();
    c.cache.close();
  }
  a.cache.close();
  return detail;
}

/** Two machines push the same fingerprint at once: both succeed, one entry stands, both verify. */
export async function twoPushersTrial(setup: RemoteSetup): Promise<string> {
  const a = await side(setup);
  const b = await side(setup);
  const entry = await artifact(a.store, `two pushers ${randomBytes(4).toString('hex')}`);
  const other = await sameArtifactElsewhere(a.store, entry, b.store);
  const [ra, rb] = await Promise.all([a.cache.push(entry), b.cache.push(other)]);
  if (a.warnings.length || b.warnings.length) throw new Error(`a pusher warned: ${[...a.warnings, ...b.warnings].join(' | ')}`);
  assert.ok(ra.pushed || rb.pushed, 'neither push wrote the entry');
  const c = await side(setup);
  const r = await c.cache.pull(entry.fingerprint);
  if (!r.pulled) throw new Lost(`after two pushes the artifact cannot be pulled: ${r.reason} ${c.warnings.join(' | ')}`);
  const stood = r.entry.createdAt === entry.createdAt ? 'the first' : 'the second';
  const problems = await remoteProblems(setup);
  if (problems.length) throw new Lost(problems.join('; '));
  for (const s of [a, b, c]) s.cache.close();
  return `both succeeded (${ra.pushed ? 'wrote' : ra.reason}; ${rb.pushed ? 'wrote' : rb.reason}); ${stood} entry stands and verifies`;
}

export { canonicalJson };

/**
 * A push killed (SIGKILL) once `k` of an artifact's objects have landed in a
 * folder remote: whatever the moment, no entry names a missing object; a
 * reader gets the whole artifact or a clean miss, and a later push completes it.
 */
export async function pushKilledTrial(k: number): Promise<string> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const remoteDir = await scratchDir('remote-killed');
  const setup: RemoteSetup = { url: `file://${remoteDir}`, env: {} };
  const a = await side(setup);
  // Eight files of a megabyte: eight moments between objects, and the entry last.
  const dir = await a.store.scratch('many');
  for (let i = 0; i < 8; i++) await fs.writeFile(path.join(dir, `part-${i}.bin`), randomBytes(1_000_000));
  const record: FingerprintRecord = { format: FINGERPRINT_FORMAT, step: { type: 'test.remote', version: 1 }, params: { k, nonce: randomBytes(8).toString('hex') }, inputs: {}, dependencies: null };
  const entry = await a.store.commit(dir, { fingerprint: fingerprintOf(record), record, stage: 'many', createdAt: new Date().toISOString(), durationMs: 1, value: null, metrics: {}, publish: [], chunkScopes: [] });
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'remote-push-child.js');
  const child = spawn(process.execPath, [script, a.store.root, entry.fingerprint, setup.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let landed = 0;
  for (let i = 0; i < 4000; i++) {
    landed = (await fs.readdir(path.join(remoteDir, 'cas'), { recursive: true }).catch(() => [] as string[])).filter((n) => /-\d+$/.test(String(n))).length;
    if (landed >= k || child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  const code = await exited;
  const problems = await remoteProblems(setup);
  if (problems.length) throw new Lost(`push killed after ${landed} objects: ${problems.join('; ')}`);
  const reader = await side(setup);
  const r = await reader.cache.pull(entry.fingerprint);
  if (!r.pulled) await nothingWrongLocally(reader, entry, 'push killed');
  else if (!(await reader.store.lookup(entry.fingerprint, 'full')).found) throw new Lost('pulled an artifact that does not verify');
  // The next push (a rerun) completes it.
  const again = await a.cache.push(entry);
  const later = await side(setup);
  if (!(await later.cache.pull(entry.fingerprint)).pulled) throw new Error(`a later push did not complete the artifact (${again.reason ?? ''} ${a.warnings.join(' | ')})`);
  for (const s of [a, reader, later]) s.cache.close();
  const tmpLeft = (await fs.readdir(path.join(remoteDir, 'tmp')).catch(() => [] as string[])).length;
  return `killed after ${landed}/8 objects (${code === null ? 'SIGKILL' : `it had exited ${code}`}): ${r.pulled ? 'entry was written: pulled whole' : 'no entry yet: a clean miss'}; completed by the next push${tmpLeft ? ` (${tmpLeft} temp file(s) of the killed writer left in the remote's tmp/)` : ''}`;
}
