// Redis connections for the queue. BullMQ's production rules: workers retry
// every command forever (maxRetriesPerRequest: null) and reconnect with a
// bounded backoff, so a Redis restart pauses work instead of ending it.
// Redis itself must run with `maxmemory-policy noeviction` (README).
import { Redis, type RedisOptions } from 'ioredis';
import { ServiceUnavailable, UsageError } from '../runner/errors.js';

/** Key prefix of every tlpipe key in Redis (BullMQ's and ours). */
export const PREFIX = 'tlpipe';

/** `redis://[user:pass@]host[:port][/db]`, `rediss://` for TLS, or `unix:///path/to/redis.sock`. */
export function parseQueueUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--queue "${url}" is not a URL: give redis://HOST:6379/0 (or unix:///path/redis.sock).`);
  }
  if (u.protocol === 'unix:') return { path: u.pathname };
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new UsageError(`--queue "${url}": only redis://, rediss:// and unix:// URLs are supported.`);
  }
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new UsageError(`--queue "${url}": the database after the host must be a number (redis://HOST:6379/0).`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** The URL without its password, for messages. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** Reconnect delay: 100 ms doubling to 5 s; never gives up (the caller decides when to). */
export const reconnectDelay = (attempt: number) => Math.min(5000, 100 * 2 ** Math.min(attempt, 6));

export function connect(url: string, onError?: (e: Error) => void): Redis {
  const redis = new Redis({
    ...parseQueueUrl(url),
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: reconnectDelay,
    lazyConnect: false,
  });
  // Without a listener ioredis prints every failed reconnect; the owner reports instead.
  redis.on('error', (e: Error) => onError?.(e));
  return redis;
}

/** Seconds the run and the worker wait for an unreachable Redis before giving up with exit 69. */
export function queueTimeoutMs(env = process.env): number {
  const s = Number(env.TLPIPE_QUEUE_TIMEOUT ?? 120);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 120_000;
}

/** Job lock duration: a worker that stops renewing it (killed, frozen) loses its job after this long. */
export function lockDurationMs(env = process.env): number {
  const ms = Number(env.TLPIPE_QUEUE_LOCK_MS ?? 30_000);
  return Number.isFinite(ms) && ms >= 500 ? ms : 30_000;
}

// Our own keys beside BullMQ's.
export const keys = {
  /** Hash: requirements id → requirements JSON. Runs write it; workers read it to find queues. */
  requirements: `${PREFIX}:requirements`,
  /** Hash per requirements id: worker name → why it refused. */
  refusals: (req: string) => `${PREFIX}:refusals:${req}`,
  /** One key per live worker, with an expiry: liveness is a lease, never a pid. */
  worker: (name: string) => `${PREFIX}:worker:${name}`,
  workerPattern: `${PREFIX}:worker:*`,
};

export const queueName = (req: string) => `features-${req}`;

/** The status records of the live workers: one key each, kept alive by its lease. */
export async function liveWorkerStatuses<T extends { queues?: string[] }>(redis: Redis): Promise<T[]> {
  const statuses: T[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', keys.workerPattern, 'COUNT', 200);
    cursor = next;
    for (const key of found) {
      const text = await redis.get(key); // gone since the scan: its lease ran out
      if (text) statuses.push(JSON.parse(text) as T);
    }
  } while (cursor !== '0');
  return statuses;
}

/** How often a run waiting on its jobs reads their states from Redis (failed, stalled, lost). */
export const STATE_CHECK_MS = 2000;
/** How long workers get to open a new queue before a run that only coordinates decides nobody serves it and works itself. */
export const DISCOVERY_GRACE_MS = 5000;

/** How many live workers take jobs from `queue` (a requirements id, or the sweep members' queue). */
export async function workersServing(redis: Redis, queue: string): Promise<number> {
  return (await liveWorkerStatuses(redis)).filter((s) => s.queues?.includes(queue)).length;
}

/** Redis could not be reached for longer than the timeout: exit 69 (EX_UNAVAILABLE). */
export class QueueUnavailable extends ServiceUnavailable {}
