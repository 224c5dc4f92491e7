// Step types: the built-in ones, which the command line registers from
// src/steps/index.ts and passes in (the runner imports no step), and user
// steps loaded from a module path the pipeline names.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { errorMessage } from './errors.js';
import type { Step } from './step.js';

/** The artifact kinds steps may declare, by name (src/artifacts/index.ts), with how messages speak of each. */
export type KindRegistry = ReadonlyMap<string, { readonly label: string }>;

/** What analysis resolves against: the built-in step types by name (`uses:`) and the artifact kinds. */
export interface StepRegistry {
  steps: ReadonlyMap<string, Step>;
  kinds: KindRegistry;
}

export function stepRegistry(steps: readonly Step[], kinds: KindRegistry): StepRegistry {
  return { steps: new Map(steps.map((s) => [s.type, s])), kinds };
}

/** `uses:` values that name a module rather than a built-in step type. */
export const isModuleReference = (uses: string) => uses.startsWith('./') || uses.startsWith('../') || path.isAbsolute(uses);

/** Loads a user step module; returns the step or a message saying what is wrong. */
export async function loadUserStep(uses: string, pipelineDir: string): Promise<Step | string> {
  const file = path.resolve(pipelineDir, uses);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && errorMessage(e).includes(file)) {
      return `Step module "${uses}" not found (looked for ${file}).`;
    }
    return `Step module "${uses}" failed to load: ${errorMessage(e).split('\n')[0]}`;
  }
  const step = (mod.default ?? mod.step) as Partial<Step> | undefined;
  const missing: string[] = [];
  if (!step || typeof step !== 'object') return `Step module "${uses}" must export a step object as its default export.`;
  if (typeof step.type !== 'string') missing.push('type (a string)');
  if (!Number.isInteger(step.version)) missing.push('version (an integer)');
  if (!step.paramsSchema || typeof step.paramsSchema !== 'object') missing.push('paramsSchema (a JSON Schema object)');
  if (typeof step.run !== 'function') missing.push('run (an async function)');
  if (step.check !== undefined && typeof step.check !== 'function') missing.push('check as a function (or no check)');
  if (missing.length) return `Step module "${uses}" is missing ${missing.join(', ')}. See docs/steps.md.`;
  return { description: '', ...step } as Step;
}
