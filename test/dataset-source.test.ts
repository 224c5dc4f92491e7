// A dataset that fetches itself: resumable download, sha256 published or
// recorded on first download, all-or-nothing extraction, consent. Served by a
// local HTTP server from zips the tests build; never the network.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { download, DownloadError } from '../src/datasets/download.js';
import { ExtractError } from '../src/datasets/extract.js';
import { downloadConsent, fetchArchive, fetchSource } from '../src/datasets/source.js';
import { tlpipe } from './support/cli.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { serveWithRanges, type RangeServer } from './support/range-server.js';
import { tempDir } from './support/tmp.js';
import { buildZip } from './support/zip.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Bytes that do not compress, so a cut lands mid-file. */
function noise(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

describe('download', () => {
  let server: RangeServer;
  const body = noise(200_000);
  before(async () => {
    server = await serveWithRanges({ '/data.bin': body });
  });
  after(() => server.close());

  test('an interrupted download resumes with a Range request and is verified', async () => {
    const dir = await tempDir();
    const target = path.join(dir, 'data.bin');
    server.cutNext('/data.bin', 70_000);
    await assert.rejects(download(server.url('/data.bin'), target, { size: body.length, sha256: sha256(body) }), (e: unknown) => {
      assert.ok(e instanceof DownloadError, String(e));
      assert.match(e.message, /Run again: it resumes/);
      return true;
    });
    assert.equal(existsSync(target), false, 'a partial file got the final name');
    const partial = (await stat(`${target}.part`)).size;
    assert.ok(partial > 0 && partial < body.length, `partial ${partial}`);

    let resumedAt = -1;
    const got = await download(server.url('/data.bin'), target, { size: body.length, sha256: sha256(body), onResume: (from) => (resumedAt = from) });
    assert.equal(got, sha256(body));
    assert.equal(resumedAt, partial);
    assert.equal(server.requests.at(-1)!.range, `bytes=${partial}-`);
    assert.deepEqual(await readFile(target), body);
    assert.equal(existsSync(`${target}.part`), false);
  });

  test('a checksum mismatch deletes the download and says what to do', async () => {
    const dir = await tempDir();
    const target = path.join(dir, 'data.bin');
    const wrong = 'ab'.repeat(32);
    await assert.rejects(download(server.url('/data.bin'), target, { sha256: wrong }), {
      name: 'DownloadError',
      message: `The download of ${server.url('/data.bin')} has sha256 ${sha256(body)}, not the expected ${wrong}: it was deleted. If the file was republished on purpose, update the sha256; otherwise try again later.`,
    });
    assert.deepEqual(await readdir(dir), []);
  });

  test('a 404 is a clear error', async () => {
    const dir = await tempDir();
    await assert.rejects(download(server.url('/nope.zip'), path.join(dir, 'x')), /Could not download .*nope\.zip: HTTP 404/);
  });
});

describe('dataset source', () => {
  let server: RangeServer;
  const zip = buildZip({ 'PetImages/Cat/1.jpg': 'cat one', 'PetImages/Dog/1.jpg': 'dog one', 'readme[1].txt': 'hello' });
  const evil = buildZip({ 'ok.txt': 'fine', '../escaped.txt': 'bad' });
  before(async () => {
    server = await serveWithRanges({ '/pets.zip': zip, '/evil.zip': evil });
  });
  after(() => server.close());

  test('without a published sha256 the first download records it; a later change is caught', async () => {
    const downloads = await tempDir();
    const env = { TLPIPE_DOWNLOADS: downloads };
    const lines: string[] = [];
    const source = { url: server.url('/pets.zip'), size: zip.length };
    const archive = await fetchArchive(source, { env, say: (l) => lines.push(l) });
    assert.equal(archive, path.join(downloads, 'pets.zip'));
    const record = JSON.parse(await readFile(`${archive}.sha256.json`, 'utf8'));
    assert.equal(record.sha256, sha256(zip));
    assert.match(lines.join('\n'), new RegExp(`recorded this download's, ${sha256(zip)}`));

    // Checked on every later use: the same file passes, a changed one does not.
    const hits = server.requests.length;
    assert.equal(await fetchArchive(source, { env }), archive);
    assert.equal(server.requests.length, hits, 'downloaded again although the archive was there');
    const changed = Buffer.from(zip);
    changed[10]! ^= 1;
    await writeFile(archive, changed);
    await assert.rejects(fetchArchive(source, { env }), new RegExp(`has sha256 ${sha256(changed)}, not the recorded .* ${sha256(zip)}: it was moved to .*pets\\.zip\\.mismatch`));
  });

  test('extraction is all or nothing; an entry leaving the folder is refused', async () => {
    const dir = await tempDir();
    const env = { TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
    await fetchSource({ url: server.url('/pets.zip') }, path.join(dir, 'data'), { env });
    assert.equal(await readFile(path.join(dir, 'data/PetImages/Cat/1.jpg'), 'utf8'), 'cat one');

    await assert.rejects(fetchSource({ url: server.url('/evil.zip') }, path.join(dir, 'evil'), { env }), (e: unknown) => {
      assert.ok(e instanceof ExtractError);
      assert.match(e.message, /^cannot extract .*evil\.zip: invalid relative path: \.\.\/escaped\.txt; nothing was extracted$/);
      return true;
    });
    assert.deepEqual((await readdir(dir)).sort(), ['data', 'downloads']);
  });

  test('consent: --download says yes, a terminal is asked, CI is refused without the flag', () => {
    const source = { url: 'https://example.org/pets.zip', size: 824_887_076 };
    assert.deepEqual(downloadConsent(source, 'data/catsdogs', { flag: true, interactive: false, ci: true }), { kind: 'yes' });
    assert.deepEqual(downloadConsent(source, 'data/catsdogs', { flag: false, interactive: true, ci: false }), {
      kind: 'ask',
      question: 'The dataset is not at data/catsdogs. Download 825 MB from https://example.org/pets.zip? [y/N] ',
    });
    assert.deepEqual(downloadConsent(source, 'data/catsdogs', { flag: false, interactive: true, ci: true }), {
      kind: 'refuse',
      message:
        'The dataset is not at data/catsdogs. Its source can be downloaded (825 MB from https://example.org/pets.zip): run again with --download (never done in CI without it), or put the data there yourself.',
    });
  });
});

describe('the main job with no data: pipelines/catsdogs.yaml gets its dataset', { skip: needsFixtures }, () => {
  let server: RangeServer;
  let zip: Buffer;
  before(async () => {
    const files: Record<string, Uint8Array | string> = { 'readme[1].txt': 'Asirra sample', 'PetImages/Cat/666.jpg': '', 'PetImages/Dog/Thumbs.db': 'x' };
    for (let i = 0; i < 12; i++) {
      files[`PetImages/Cat/${i}.jpg`] = await readFile(fixture('datasets', 'catsdogs-2k', 'train', `cat.${i}.jpg`));
      files[`PetImages/Dog/${i}.jpg`] = await readFile(fixture('datasets', 'catsdogs-2k', 'train', `dog.${i}.jpg`));
    }
    zip = buildZip(files);
    server = await serveWithRanges({ '/kagglecatsanddogs_5340.zip': zip });
  });
  after(() => server?.close());

  test('refused in CI without --download; with it: an interrupted download resumes, then the job runs', async () => {
    const dir = await tempDir({ 'package.json': '{}' });
    await mkdir(path.join(dir, 'pipelines'));
    await copyFile(path.join(repoRoot, 'pipelines/catsdogs.yaml'), path.join(dir, 'pipelines/catsdogs.yaml'));
    const url = server.url('/kagglecatsanddogs_5340.zip');
    const env = { TLPIPE_MODELS: fixture('models'), TLPIPE_DOWNLOADS: path.join(dir, 'downloads') };
    const args = ['run', 'pipelines/catsdogs.yaml', '--set', `dataset.source={url: "${url}", size: ${zip.length}}`, '--set', 'epochs=3'];

    const refused = await tlpipe(args, { cwd: dir, env });
    assert.equal(refused.code, 64, refused.stderr);
    assert.match(refused.stderr, /Stage "dataset": The dataset is not at data\/catsdogs\. Its source can be downloaded \(\d+ MB from .*\): run again with --download \(never done in CI without it\)/);
    assert.equal(server.requests.length, 0);

    server.cutNext('/kagglecatsanddogs_5340.zip', Math.floor(zip.length / 2));
    const cut = await tlpipe([...args, '--download'], { cwd: dir, env });
    assert.equal(cut.code, 1, cut.stderr);
    assert.match(cut.stderr, /Stage "dataset": The download was interrupted at \d+ of \d+ bytes .*Run again: it resumes from there\./);
    assert.equal(existsSync(path.join(dir, 'data/catsdogs')), false, 'a partial dataset was extracted');

    const r = await tlpipe([...args, '--download', '--json'], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(server.requests.at(-1)!.range, /^bytes=\d+-$/);
    assert.match(r.stderr, /dataset: resuming the download at byte \d+/);
    assert.match(r.stderr, /dataset: no sha256 is published for .*: recorded this download's/);
    assert.match(r.stderr, /dataset: PetImages layout: .*data\/catsdogs\/PetImages\/<class>\/ \(Cat, Dog\)/);
    const summary = JSON.parse(r.stdout) as { status: string; metrics: Record<string, Record<string, number>>; stages: { name: string; status: string }[] };
    assert.equal(summary.status, 'succeeded');
    assert.equal(summary.metrics.dataset!.images, 24);
    assert.equal(summary.metrics.dataset!.skipped, 1);
    assert.equal(summary.stages.find((s) => s.name === 'predictions')!.status, 'skipped');
  });
});
