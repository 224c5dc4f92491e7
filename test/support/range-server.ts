// A local HTTP server for download tests: serves files with Range support,
// records each request's Range header, and can cut a response short once.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RangeServer {
  url(name: string): string;
  /** Each request: path and its Range header ('' when none). */
  requests: { path: string; range: string }[];
  /** The next response to `path` sends only this many bytes, then drops the connection. */
  cutNext(path: string, bytes: number): void;
  close(): Promise<void>;
}

export async function serveWithRanges(files: Record<string, Uint8Array>): Promise<RangeServer> {
  const requests: RangeServer['requests'] = [];
  const cuts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0]!;
    const range = String(req.headers.range ?? '');
    requests.push({ path: p, range });
    const body = files[p];
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(range);
    if (m) {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'accept-ranges': 'bytes' });
    } else {
      res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    }
    const cut = cuts.get(p);
    if (cut !== undefined) {
      cuts.delete(p);
      res.write(body.subarray(start, start + cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}${name}`,
    requests,
    cutNext: (p, bytes) => cuts.set(p, bytes),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
