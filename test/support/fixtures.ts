// Locates the shared real-data fixtures (models, photos, the catsdogs-2k set).
// They live beside the project, never inside it; tests that need them skip
// with a clear message when they are absent (a user's fresh clone).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export const fixturesDir = path.resolve(
  process.env.TLPIPE_FIXTURES ?? path.join(repoRoot, '..', 'shared', 'fixtures'),
);

export const haveFixtures = existsSync(path.join(fixturesDir, 'models', 'mobilenetv2-12-int8.onnx'));

/** `skip` option for node:test: false when fixtures exist, else the reason. */
export const needsFixtures: false | string = haveFixtures
  ? false
  : `real-data fixtures not found at ${fixturesDir} (set TLPIPE_FIXTURES to the shared fixtures folder)`;

export const fixture = (...parts: string[]) => path.join(fixturesDir, ...parts);

export { repoRoot };
