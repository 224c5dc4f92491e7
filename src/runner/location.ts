// Paths as they enter fingerprints and shared artifacts. A key or a manifest
// must not depend on where a checkout lives: a path inside the project is kept
// relative to it (with "/"), a path outside it (a mounted data folder) is not
// kept at all — its content hash stands for it.
import path from 'node:path';

/** Marks a path outside the project in a fingerprint record: its content is keyed, not its place. */
export const OUTSIDE_PROJECT = '(outside the project: keyed by content)';

/** `p` relative to the project with "/" separators, or undefined when it is outside the project. */
export function projectRelative(projectDir: string, p: string): string | undefined {
  const rel = path.relative(projectDir, path.resolve(projectDir, p));
  if (rel === '') return '.';
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return rel.split(path.sep).join('/');
}

/** How a path goes into a fingerprint record: relative inside the project, a marker outside it. */
export function keyPath(projectDir: string, p: string): string {
  return projectRelative(projectDir, p) ?? OUTSIDE_PROJECT;
}

/** How a path is written into an artifact: relative inside the project, absolute (and machine-local) outside it. */
export function storedPath(projectDir: string, p: string): string {
  return projectRelative(projectDir, p) ?? path.resolve(projectDir, p);
}
