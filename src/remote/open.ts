// Opens the remote a command resolved (remote/config.ts) over the local store.
// The backend is created on first use only: the S3 SDK is loaded only by
// commands that actually talk to an S3 remote.
import { UsageError } from '../runner/errors.js';
import type { ArtifactStore } from '../runner/store.js';
import type { RemoteBackend } from './backend.js';
import { RemoteCache } from './cache.js';
import type { ResolvedRemote } from './config.js';
import { FileBackend } from './file-backend.js';
import { signingKeyFrom } from './signing.js';
import type { RemoteLocation } from './url.js';

/** Timeouts and retries, from the environment (seconds; attempts after the first). */
export function transferSettings(env = process.env) {
  const num = (name: string, fallback: number, min: number) => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`${name} must be a number ≥ ${min}, got "${text}".`);
    return n;
  };
  const timeoutS = num('TLPIPE_REMOTE_TIMEOUT', 30, 0.1);
  const retries = Math.floor(num('TLPIPE_REMOTE_RETRIES', 2, 0));
  return { requestTimeoutMs: timeoutS * 1000, connectTimeoutMs: Math.min(timeoutS, 10) * 1000, maxAttempts: retries + 1, retries };
}

export async function openBackend(location: RemoteLocation, env = process.env): Promise<RemoteBackend> {
  if (location.kind === 'file') return new FileBackend(location.url, location.root);
  const { S3Backend } = await import('./s3-backend.js');
  return new S3Backend(location.url, location.bucket, location.prefix, transferSettings(env), env);
}

export function openRemote(
  remote: ResolvedRemote,
  store: ArtifactStore,
  options: { warn: (m: string) => void; strict?: boolean; env?: NodeJS.ProcessEnv },
): RemoteCache {
  const env = options.env ?? process.env;
  const settings = transferSettings(env);
  return new RemoteCache(() => openBackend(remote.location, env), store, {
    name: remote.name,
    readOnly: remote.readOnly,
    signing: signingKeyFrom(env),
    warn: options.warn,
    strict: options.strict,
    streamRetries: settings.retries,
  });
}
