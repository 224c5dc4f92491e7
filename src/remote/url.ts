// Remote URLs: `file:///abs/path` (a shared folder: NFS, SMB, a USB disk) and
// `s3://bucket/prefix` (AWS S3 and S3-compatible servers). Credentials never
// go in a URL: S3's come from the AWS SDK's own environment and config files.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../runner/errors.js';

export type RemoteLocation = { kind: 'file'; url: string; root: string } | { kind: 's3'; url: string; bucket: string; prefix: string };

export function parseRemoteUrl(text: string): RemoteLocation {
  const what = `Remote URL "${text}"`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${what} is not a URL. Use file:///absolute/folder or s3://bucket/prefix.`);
  }
  if (url.username || url.password) {
    throw new UsageError(`${what} carries credentials; never put them in a URL (the project config is committed). For S3 use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile.`);
  }
  if (url.protocol === 'file:') {
    if (url.host && url.host !== 'localhost') throw new UsageError(`${what}: a file:// URL names a folder on this machine (file:///path); mount a shared folder and name its path.`);
    const root = fileURLToPath(url);
    if (!path.isAbsolute(root)) throw new UsageError(`${what}: the folder must be an absolute path (file:///abs/path).`);
    return { kind: 'file', url: `file://${root}`, root: path.normalize(root) };
  }
  if (url.protocol === 's3:') {
    const bucket = url.hostname;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new UsageError(`${what}: "${bucket}" is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens).`);
    if (url.search || url.hash || url.port) throw new UsageError(`${what}: an s3:// URL is s3://bucket/prefix; set the endpoint with AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3).`);
    const prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
    return { kind: 's3', url: `s3://${bucket}${prefix ? `/${prefix}` : ''}`, bucket, prefix: prefix ? `${prefix}/` : '' };
  }
  throw new UsageError(`${what}: unsupported scheme "${url.protocol.replace(/:$/, '')}". Use file:///absolute/folder or s3://bucket/prefix.`);
}
