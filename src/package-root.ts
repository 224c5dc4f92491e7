// The folder of tlpipe's own package.json, found by walking up from this
// module: the same answer whether this code runs from tsc's per-file output
// (dist/src/...) or from the start-up bundle (dist/cli/...).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'schemas'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`tlpipe's package.json was not found above ${from}: the installation is incomplete`);
  }
}

export const packageRoot = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));
