// A real redis-server per test: a free local port, no persistence,
// `maxmemory-policy noeviction` (BullMQ's rule), stopped after the test even
// when it fails. Killing and restarting it empty is how the fault suite makes
// Redis lose everything.
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));

/** `skip` option for node:test: false when redis-server is installed, else the reason. */
export const needsRedis: false | string = BINARY ? false : 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)';

export interface RedisServer {
  port: number;
  url: string;
  /** Stops it (SIGTERM), waiting for it to exit. */
  stop(): Promise<void>;
  /** Kills it at once (SIGKILL): every key is lost, nothing was saved. */
  kill(): Promise<void>;
  /** Starts it again, empty, on the same port. */
  restart(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set<ResultPromise>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export async function startRedis(): Promise<RedisServer> {
  if (!BINARY) throw new Error(String(needsRedis));
  const port = await freePort();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlpipe-redis-'));
  let child: ResultPromise | undefined;
  const launch = async () => {
    const p = execa(BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--dir', dir, '--daemonize', 'no'], {
      reject: false,
      stdin: 'ignore',
      buffer: false,
    }) as unknown as ResultPromise;
    running.add(p);
    child = p;
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start on port ${port}: ${seen.slice(-500)}`)), 10_000);
      p.stdout!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void p.then(() => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited: ${seen.slice(-500)}`));
      });
    });
  };
  const end = async (signal: 'SIGTERM' | 'SIGKILL') => {
    const p = child;
    child = undefined;
    if (!p) return;
    p.kill(signal);
    await p;
    running.delete(p);
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    stop: async () => {
      await end('SIGTERM');
      await fs.rm(dir, { recursive: true, force: true });
    },
    kill: () => end('SIGKILL'),
    restart: launch,
  };
}
