// Checks, at validation, the paths each stage declares (Step.paths): what it
// reads must exist, what it writes must stay inside the project. A mistyped
// dataset folder or an output outside the project is reported with the other
// problems of the file, before any stage runs — not after the whole job.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Diagnostic } from './diagnostic.js';
import type { Locations, Pointer } from './load.js';
import type { Json, Step } from './step.js';

/** Whether `p` (relative to the project, or absolute) is inside the project folder. */
export function isInsideProject(projectDir: string, p: string): boolean {
  const rel = path.relative(projectDir, path.resolve(projectDir, p));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export function checkStagePaths(
  step: Step,
  stage: string,
  params: Json,
  at: Pointer,
  projectDir: string,
  locations: Locations,
  diagnostics: Diagnostic[],
): void {
  if (!step.paths) return;
  let uses;
  try {
    uses = step.paths(params);
  } catch (e) {
    diagnostics.push(locations.diagnostic(`${at}/with`, `Stage "${stage}": ${(e as Error).message}`));
    return;
  }
  for (const w of uses.writes ?? []) {
    if (!isInsideProject(projectDir, w.path)) {
      diagnostics.push(
        locations.diagnostic(
          `${at}/with/${w.param}`,
          `The ${w.what} of stage "${stage}" would be written to ${path.resolve(projectDir, w.path)}, outside the project folder ${projectDir}. ` +
            'Outputs stay inside the project (they are restored from the cache and recorded relative to it): give a path inside it and copy the file from there.',
        ),
      );
    }
  }
  for (const r of uses.reads ?? []) {
    const full = path.resolve(projectDir, r.path);
    if (!existsSync(full)) {
      diagnostics.push(
        locations.diagnostic(
          `${at}/with/${r.param}`,
          `The ${r.what} of stage "${stage}", ${full}, does not exist. Check the path (relative paths start at the project folder ${projectDir}).`,
        ),
      );
    }
  }
}
