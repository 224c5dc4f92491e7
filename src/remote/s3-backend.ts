// A remote in an S3 bucket (AWS S3, MinIO, Ceph, R2, ...), through the AWS
// SDK v3: endpoint, region and credentials come from its standard environment
// and config files (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
// AWS_PROFILE...). Requests are signed by the SDK. Timeouts bound every
// request; the SDK's standard retry mode retries throttling, 5xx and network
// errors with exponential backoff and jitter.
import { open } from 'node:fs/promises';
import { type Readable, Transform } from 'node:stream';
import { type RemoteBackend, type RemoteObjectInfo, RemoteError, RemoteUnavailable } from './backend.js';

// The SDK warns on Node 20 about its releases of 2027; tlpipe pins its version.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const s3 = await import('@aws-sdk/client-s3');

export interface S3Settings {
  /** Per request, from the first byte sent to the last byte received (ms). */
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  /** Attempts per request, the first included. */
  maxAttempts: number;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

export class S3Backend implements RemoteBackend {
  private readonly client: InstanceType<typeof s3.S3Client>;

  constructor(
    readonly url: string,
    private readonly bucket: string,
    private readonly prefix: string,
    settings: S3Settings,
    env = process.env,
  ) {
    // A custom endpoint is an S3-compatible server: those want path-style URLs.
    const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
    // The SDK reads these same variables itself; they are passed on so that
    // `env` (not only process.env) decides, and the rest (profiles, config
    // files, instance roles) is left to the SDK's own chain.
    const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
    const credentials =
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
        : undefined;
    this.client = new s3.S3Client({
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region } : {}),
      ...(credentials ? { credentials } : {}),
      forcePathStyle: Boolean(endpoint),
      maxAttempts: settings.maxAttempts,
      retryMode: 'standard',
      // Checksums only where S3 requires them: several S3-compatible servers
      // reject the newer default (aws-chunked bodies with trailing CRCs).
      // Integrity is tlpipe's own: every object is named and checked by sha256.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      expectContinueHeader: false,
      requestHandler: { connectionTimeout: settings.connectTimeoutMs, requestTimeout: settings.requestTimeoutMs },
      // Failures reach the user as tlpipe's own warnings; the SDK would also print some to the console.
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    });
  }

  private key(key: string): string {
    return this.prefix + key;
  }

  private failure(e: unknown, what: string): Error {
    const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
    const status = err.$metadata?.httpStatusCode;
    const code = err.code ?? err.cause?.code ?? '';
    const detail = `${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message ?? String(e)}`;
    const msg = `${what} at ${this.url}: ${detail}`;
    if (err.name === 'AbortError') return e as Error;
    if (/Region is missing/i.test(detail)) return new RemoteError(`${what} at ${this.url}: no AWS region is set; set AWS_REGION (or a region in ~/.aws/config).`);
    if (/credential/i.test(detail) && !status) return new RemoteError(`${what} at ${this.url}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.`);
    if (err.name === 'TimeoutError' || err.name === 'RequestTimeout' || NETWORK_CODES.has(code) || (status !== undefined && status >= 500)) return new RemoteUnavailable(msg);
    if (status === 403) return new RemoteError(`${msg} (access denied: check the credentials and the bucket policy)`);
    if (err.name === 'NoSuchBucket') return new RemoteError(`${what}: the bucket "${this.bucket}" does not exist at ${this.url}; create it first.`);
    if (!status) return new RemoteUnavailable(msg);
    return new RemoteError(msg);
  }

  private isMissing(e: unknown): boolean {
    const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
    return err.name === 'NoSuchKey' || err.name === 'NotFound' || (err.$metadata?.httpStatusCode === 404 && err.name !== 'NoSuchBucket');
  }

  async get(key: string, signal?: AbortSignal): Promise<Readable | undefined> {
    try {
      const r = await this.client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }), { abortSignal: signal });
      return r.Body as Readable;
    } catch (e) {
      if (this.isMissing(e)) return undefined;
      throw this.failure(e, `reading ${key}`);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<RemoteObjectInfo | undefined> {
    try {
      const r = await this.client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }), { abortSignal: signal });
      return { key, size: r.ContentLength ?? 0, modified: r.LastModified ?? new Date(0) };
    } catch (e) {
      if (this.isMissing(e)) return undefined;
      throw this.failure(e, `checking ${key}`);
    }
  }

  async put(key: string, body: Uint8Array | { file: string; size: number }, signal?: AbortSignal, onBytes?: (sent: number) => void): Promise<void> {
    if (body instanceof Uint8Array) {
      try {
        await this.client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: body, ContentLength: body.length }), { abortSignal: signal });
      } catch (e) {
        throw this.failure(e, `writing ${key}`);
      }
      return;
    }
    // Opened first: a missing local file is an error here, not a stream error nobody hears.
    const handle = await open(body.file, 'r');
    try {
      let sent = 0;
      const counted = handle.createReadStream({ autoClose: false }).pipe(
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            sent += chunk.length;
            onBytes?.(sent);
            done(null, chunk);
          },
        }),
      );
      await this.client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: counted, ContentLength: body.size }), { abortSignal: signal });
    } catch (e) {
      throw this.failure(e, `writing ${key}`);
    } finally {
      await handle.close();
    }
  }

  async list(prefix: string, signal?: AbortSignal): Promise<RemoteObjectInfo[]> {
    const out: RemoteObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const r = await this.client.send(
          new s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.key(prefix), ContinuationToken: token }),
          { abortSignal: signal },
        );
        for (const o of r.Contents ?? []) {
          if (o.Key) out.push({ key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw this.failure(e, `listing ${prefix}`);
    }
    return out;
  }

  async delete(keys: string[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const r = await this.client.send(
          new s3.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((k) => ({ Key: this.key(k) })), Quiet: true } }),
          { abortSignal: signal },
        );
        if (r.Errors?.length) throw new RemoteError(`deleting ${r.Errors.length} object(s) at ${this.url} failed: ${r.Errors[0]!.Code} ${r.Errors[0]!.Message ?? ''}`);
      } catch (e) {
        if (e instanceof RemoteError) throw e;
        throw this.failure(e, 'deleting objects');
      }
    }
  }

  close(): void {
    this.client.destroy();
  }
}
