// A real S3-compatible server for the tests: s3rver (an npm dev dependency)
// in its own process on a free loopback port, storing objects on disk, so a
// test can stop it mid-transfer. Requests reach it through the AWS SDK, signed
// and over HTTP like any S3 endpoint's.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 's3-server-child.js');

export interface S3Server {
  endpoint: string;
  bucket: string;
  /** The folder s3rver keeps its objects in (tests tamper with them there). */
  directory: string;
  /** The environment a tlpipe process needs to reach it (the AWS SDK's own variables). */
  env: Record<string, string>;
  /** Stops the server (SIGKILL: as abruptly as a crash); `start` brings it back on the same port and data. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

function launch(directory: string, port: number, bucket: string): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, directory, String(port), bucket], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^listening (\d+)$/m.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${out}`)));
  });
}

export async function startS3Server(bucket = 'tlpipe-test'): Promise<S3Server> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'tlpipe-s3rver-'));
  let { proc, port } = await launch(directory, 0, bucket);
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await gone;
  };
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    directory,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      // No profile files of the machine running the tests.
      AWS_CONFIG_FILE: path.join(directory, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(directory, 'no-aws-credentials'),
    },
    kill: stop,
    restart: async () => {
      await stop();
      ({ proc } = await launch(directory, port, bucket));
    },
    close: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
