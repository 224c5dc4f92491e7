// Installs: `npm ci` is offline and CPU-only by default, prints no npm
// warning, and the documented CUDA opt-in really reaches onnxruntime-node's
// download. Every outbound HTTPS request the install scripts make goes through
// a recording proxy on loopback (onnxruntime-node's script honours
// GLOBAL_AGENT_HTTPS_PROXY), so these tests never touch the network.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { CUDA_INSTALL_COMMAND } from '../src/onnx/cuda-install.js';
import { repoRoot } from './support/fixtures.js';
import { removeDir, tempDir } from './support/tmp.js';

/** The environment without what an enclosing `npm test` exports (npm_config_local_prefix would point npm at this repo). */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^npm_/i.test(k) && !/^ONNXRUNTIME_NODE_INSTALL/.test(k) && !/^GLOBAL_AGENT_/.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

function npm(args: string[], cwd: string, env: Record<string, string> = {}) {
  return execa('npm', args, { cwd, env: cleanEnv(env), extendEnv: false, reject: false, stdin: 'ignore', timeout: 300_000 });
}

/** An HTTP proxy that records every request and CONNECT and answers each with 502. */
async function recordingProxy(): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(502).end();
  });
  server.on('connect', (req, socket) => {
    seen.push(`CONNECT ${req.url}`);
    socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

const cudaLibrary = (dir: string) =>
  path.join(dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so');

test('npm commands in the project print no warning about its .npmrc', async () => {
  const r = await npm(['pkg', 'get', 'name'], repoRoot);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stdout.trim(), '"tlpipe"');
  assert.equal(r.stderr, '', 'npm printed warnings');
});

test("the project's .npmrc stops dependency install scripts (an install script that would download)", async () => {
  // A package whose postinstall writes a marker, standing for onnxruntime-node's download.
  const dir = await tempDir({
    'dep/package.json': JSON.stringify({
      name: 'downloads-on-install',
      version: '1.0.0',
      scripts: { postinstall: `node -e "require('fs').writeFileSync(process.env.INIT_CWD + '/INSTALL-SCRIPT-RAN', '')"` },
    }),
    'app/package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { 'downloads-on-install': 'file:../dep/downloads-on-install-1.0.0.tgz' } }),
  });
  try {
    const pack = await npm(['pack', '--silent'], path.join(dir, 'dep'));
    assert.equal(pack.exitCode, 0, pack.stderr);
    await copyFile(path.join(repoRoot, '.npmrc'), path.join(dir, 'app', '.npmrc'));
    const r = await npm(['install', '--offline', '--no-audit', '--no-fund'], path.join(dir, 'app'));
    assert.equal(r.exitCode, 0, r.stderr);
    assert.ok(existsSync(path.join(dir, 'app', 'node_modules', 'downloads-on-install', 'package.json')), 'the package was installed');
    assert.equal(existsSync(path.join(dir, 'app', 'INSTALL-SCRIPT-RAN')), false, 'the install script ran');
  } finally {
    await removeDir(dir);
  }
});

test('the README documents the CUDA opt-in as the command the messages print', async () => {
  const readme = await readFile(path.join(repoRoot, 'README.md'), 'utf8');
  const cuda = readme.slice(readme.indexOf('## CUDA'));
  assert.ok(cuda.includes(CUDA_INSTALL_COMMAND), `README's CUDA section should show: ${CUDA_INSTALL_COMMAND}`);
});

describe("npm ci of this project's lockfile, offline", () => {
  let dir = '';
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let install: Awaited<ReturnType<typeof npm>>;
  let skip: string | false = false;

  before(async () => {
    proxy = await recordingProxy();
    dir = await tempDir();
    for (const f of ['package.json', 'package-lock.json', '.npmrc']) await copyFile(path.join(repoRoot, f), path.join(dir, f));
    install = await npm(['ci', '--offline', '--no-audit', '--no-fund'], dir, {
      GLOBAL_AGENT_HTTPS_PROXY: proxy.url,
      GLOBAL_AGENT_HTTP_PROXY: proxy.url,
    });
    if (install.exitCode !== 0 && /ENOTCACHED/.test(install.stderr)) {
      skip = "npm's cache does not hold this lockfile's packages (run `npm ci` once with network)";
    }
  });
  after(async () => {
    await proxy?.close();
    if (dir) await removeDir(dir);
  });

  test('installs with no warning, no download attempt and no CUDA libraries', (t) => {
    if (skip) return t.skip(skip);
    assert.equal(install.exitCode, 0, install.stderr);
    assert.doesNotMatch(install.stderr, /npm warn/i);
    assert.deepEqual(proxy.seen, [], 'an install script tried to download');
    assert.ok(existsSync(path.join(dir, 'node_modules', 'onnxruntime-node', 'package.json')));
    assert.equal(existsSync(cudaLibrary(dir)), false, 'CUDA provider libraries were installed');
  });

  test("the documented CUDA opt-in runs onnxruntime-node's download (stopped at the proxy)", async (t) => {
    if (skip) return t.skip(skip);
    const [assignment, ...command] = CUDA_INSTALL_COMMAND.split(' ');
    const [name, value] = assignment!.split('=');
    assert.equal(command[0], 'npm');
    const r = await npm(command.slice(1), dir, { [name!]: value!, GLOBAL_AGENT_HTTPS_PROXY: proxy.url, GLOBAL_AGENT_HTTP_PROXY: proxy.url });
    assert.notEqual(r.exitCode, 0, 'the download cannot succeed through the proxy');
    assert.ok(proxy.seen.includes('CONNECT api.nuget.org:443'), `requests seen: ${JSON.stringify(proxy.seen)}`);
    assert.equal(existsSync(cudaLibrary(dir)), false);
  });
});
