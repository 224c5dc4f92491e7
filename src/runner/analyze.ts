// Analysis: a loaded pipeline source → a checked Pipeline, or every problem
// found, each as a Diagnostic pointing at the line that caused it.
import type { ErrorObject } from 'ajv';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../package-root.js';
import { type Diagnostic, closest, didYouMean } from './diagnostic.js';
import { errorMessage, PipelineInvalid } from './errors.js';
import { type LoadedSource, type Locations, type Pointer, pointer } from './load.js';
import { compileSchema, type Validator } from './compiled-schema.js';
import { checkStagePaths } from './path-checks.js';
import { structureOnly } from './pipeline-schema.js';
import { isModuleReference, loadUserStep, type StepRegistry } from './registry.js';
import type { Json, JsonSchema, ParamProblem, Step, UpstreamPreview } from './step.js';
import { checkDeclaredKinds, checkWiring } from './wiring.js';

export interface Stage {
  name: string;
  uses: string;
  step: Step;
  /** Parameters with the step's defaults filled in. */
  params: Json;
  /** Input name → the stage that produces it. */
  inputs: { [input: string]: string };
}

export interface Pipeline {
  name: string;
  file: string;
  pipelineDir: string;
  projectDir: string;
  params: Record<string, unknown>;
  sweep: Record<string, unknown[]> | undefined;
  /** In an order where every stage comes after the stages it consumes. */
  stages: Stage[];
  source: LoadedSource;
}

export const schemaFile = path.join(packageRoot, 'schemas', 'pipeline.schema.json');

/** The published schema: the structure plus, for editors, each built-in step's parameters. */
export function pipelineSchema(): JsonSchema {
  return JSON.parse(readFileSync(schemaFile, 'utf8')) as JsonSchema;
}

/** How pipeline files and step parameters are checked (compiled once, see compiled-schema.ts). */
const VALIDATION = { allErrors: true, useDefaults: true, strict: false, verbose: true } as const;

let structureValidator: Validator | undefined;
function validateStructure(value: unknown): ErrorObject[] {
  if (!structureValidator) {
    // Step parameters are checked against each step's own schema below, with
    // better messages, so the editor-only per-step rules are left out here.
    structureValidator = compileSchema(structureOnly(pipelineSchema()), VALIDATION);
  }
  return structureValidator(value) ? [] : [...(structureValidator.errors ?? [])];
}

const stepValidators = new WeakMap<Step, Validator>();
function stepValidator(step: Step): Validator {
  let v = stepValidators.get(step);
  if (!v) {
    v = compileSchema(step.paramsSchema, VALIDATION);
    stepValidators.set(step, v);
  }
  return v;
}

export function findProjectDir(pipelineDir: string): string {
  for (let dir = pipelineDir; ; dir = path.dirname(dir)) {
    if (['.tlpipe', '.git', 'package.json'].some((m) => existsSync(path.join(dir, m)))) return dir;
    if (path.dirname(dir) === dir) return pipelineDir;
  }
}

export async function analyze(source: LoadedSource, registry: StepRegistry): Promise<Pipeline> {
  const builtins = registry.steps;
  const diagnostics: Diagnostic[] = [...source.diagnostics];
  const { value, locations } = source;
  const file = source.files[0]!.path;
  const pipelineDir = path.dirname(file);
  const projectDir = findProjectDir(pipelineDir);

  checkFiniteNumbers(value, '', locations, diagnostics);
  for (const e of validateStructure(value)) if (e.keyword !== 'if') diagnostics.push(toDiagnostic(e, '', locations));
  const stagesValue = (typeof value.stages === 'object' && value.stages && !Array.isArray(value.stages) ? value.stages : {}) as Record<
    string,
    Record<string, unknown>
  >;
  const stageNames = Object.keys(stagesValue);

  const stages: Stage[] = [];
  const validParams = new Set<string>();
  for (const [name, raw] of Object.entries(stagesValue)) {
    if (!raw || typeof raw !== 'object' || typeof raw.uses !== 'string') continue;
    const at = pointer('stages', name);
    const step = await resolveStep(raw.uses, builtins, pipelineDir, `${at}/uses`, locations, diagnostics);
    const inputs = normaliseInputs(raw.inputs);
    for (const [input, producer] of Object.entries(inputs)) {
      const p = Array.isArray(raw.inputs) ? `${at}/inputs/${(raw.inputs as string[]).indexOf(producer)}` : `${at}/inputs${pointer(input)}`;
      if (!(producer in stagesValue)) {
        diagnostics.push(locations.diagnostic(p, `Stage "${name}" consumes "${producer}", which is not a stage of this pipeline.${didYouMean(producer, stageNames.filter((s) => s !== name))}`));
      } else if (producer === name) {
        diagnostics.push(locations.diagnostic(p, `Stage "${name}" cannot consume its own artifact.`));
      }
    }
    if (!step || !checkDeclaredKinds(step, raw.uses, registry.kinds, `${at}/uses`, locations, diagnostics)) continue;
    checkInputNames(step, name, raw, inputs, at, locations, diagnostics);
    const params = structuredClone(raw.with ?? {}) as Json;
    const validate = stepValidator(step);
    if (!validate(params)) {
      // An `if` error only repeats what its `then` branch already reported.
      for (const e of validate.errors ?? []) if (e.keyword !== 'if') diagnostics.push(toDiagnostic(e, `${at}/with`, locations, `stage "${name}"`));
    } else {
      validParams.add(name);
      checkStagePaths(step, name, params, at, projectDir, locations, diagnostics);
    }
    stages.push({ name, uses: raw.uses, step, params, inputs });
  }
  checkParams(stages, validParams, locations, diagnostics);

  checkWiring(stages, registry.kinds, locations, diagnostics, [...builtins.values()]);
  const ordered = orderStages(stages, locations, diagnostics);
  if (diagnostics.length) throw new PipelineInvalid(dedupe(diagnostics));
  return {
    name: String(value.name),
    file,
    pipelineDir,
    projectDir,
    params: source.params,
    sweep: value.sweep as Record<string, unknown[]> | undefined,
    stages: ordered,
    source,
  };
}

/**
 * Each step's own rules (`check`) on parameters its schema accepted, with what
 * its upstream stages' parameters promise (`preview`), before anything runs.
 */
function checkParams(stages: Stage[], validParams: ReadonlySet<string>, locations: Locations, diagnostics: Diagnostic[]): void {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const previewOf = (s: Stage): Json | undefined => {
    if (!s.step.preview || !validParams.has(s.name)) return undefined;
    try {
      return s.step.preview(s.params);
    } catch {
      return undefined;
    }
  };
  for (const stage of stages) {
    if (!stage.step.check || !validParams.has(stage.name)) continue;
    const upstream: { [input: string]: UpstreamPreview } = {};
    for (const [input, producer] of Object.entries(stage.inputs)) {
      const p = byName.get(producer);
      if (!p) continue;
      const preview = previewOf(p);
      upstream[input] = { stage: p.name, ...(p.step.produces ? { kind: p.step.produces } : {}), ...(preview !== undefined ? { preview } : {}) };
    }
    const at = pointer('stages', stage.name);
    let problems: ParamProblem[];
    try {
      problems = stage.step.check(stage.params, upstream);
    } catch (e) {
      diagnostics.push(locations.diagnostic(`${at}/uses`, `The check of step "${stage.uses}" failed unexpectedly: ${errorMessage(e)}`));
      continue;
    }
    for (const problem of problems) {
      const where = problem.at ? `${at}/with/${problem.at.split('/').map((k) => k.replace(/~/g, '~0')).join('/')}` : `${at}/uses`;
      diagnostics.push(locations.diagnostic(where, `Stage "${stage.name}": ${problem.message}`));
    }
  }
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.file.path}:${d.start}:${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function normaliseInputs(inputs: unknown): { [input: string]: string } {
  if (Array.isArray(inputs)) return Object.fromEntries(inputs.filter((s) => typeof s === 'string').map((s) => [s, s]));
  if (inputs && typeof inputs === 'object') {
    return Object.fromEntries(Object.entries(inputs).filter(([, v]) => typeof v === 'string')) as { [k: string]: string };
  }
  return {};
}

async function resolveStep(
  uses: string,
  builtins: StepRegistry['steps'],
  pipelineDir: string,
  at: Pointer,
  locations: Locations,
  diagnostics: Diagnostic[],
): Promise<Step | undefined> {
  if (isModuleReference(uses)) {
    const loaded = await loadUserStep(uses, pipelineDir);
    if (typeof loaded === 'string') {
      diagnostics.push(locations.diagnostic(at, loaded));
      return undefined;
    }
    return loaded;
  }
  const step = builtins.get(uses);
  if (!step) {
    const hint = didYouMean(uses, builtins.keys());
    diagnostics.push(
      locations.diagnostic(at, `Unknown step type "${uses}".${hint || ` Known types: ${[...builtins.keys()].join(', ')}; a user step is a path starting with ./`}`),
    );
  }
  return step;
}

function checkInputNames(
  step: Step,
  stage: string,
  raw: Record<string, unknown>,
  inputs: { [input: string]: string },
  at: Pointer,
  locations: Locations,
  diagnostics: Diagnostic[],
): void {
  const declared = step.inputs ?? {};
  if ('any' in declared && declared.any === true) return;
  const ports = declared as Record<string, { description: string; optional?: boolean }>;
  if (Array.isArray(raw.inputs) && Object.keys(ports).length) {
    diagnostics.push(
      locations.diagnostic(`${at}/inputs`, `Step "${step.type}" names its inputs: write them as a mapping, e.g. {${Object.keys(ports).map((p) => `${p}: <stage>`).join(', ')}}.`),
    );
    return;
  }
  for (const input of Object.keys(inputs)) {
    if (!(input in ports)) {
      const known = Object.keys(ports);
      diagnostics.push(
        locations.diagnostic(
          `${at}/inputs${pointer(input)}`,
          `Step "${step.type}" has no input "${input}".${didYouMean(input, known) || (known.length ? ` Its inputs: ${known.join(', ')}.` : ' It takes no inputs.')}`,
          'key',
        ),
      );
    }
  }
  for (const [port, spec] of Object.entries(ports)) {
    if (!spec.optional && !(port in inputs)) {
      diagnostics.push(
        locations.diagnostic(raw.inputs ? `${at}/inputs` : `${at}/uses`, `Stage "${stage}" must name the stage for input "${port}" (${spec.description}) under "inputs:".`),
      );
    }
  }
}

/** Depth-first topological order; a cycle is reported with its path. */
function orderStages(stages: Stage[], locations: Locations, diagnostics: Diagnostic[]): Stage[] {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const out: Stage[] = [];
  const visit = (s: Stage, trail: string[]): void => {
    const st = state.get(s.name);
    if (st === 'done') return;
    if (st === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(s.name)), s.name];
      diagnostics.push(locations.diagnostic(pointer('stages', s.name, 'inputs'), `Stages form a cycle: ${cycle.join(' → ')}. A stage can only consume stages that come before it.`));
      return;
    }
    state.set(s.name, 'visiting');
    for (const producer of Object.values(s.inputs)) {
      const p = byName.get(producer);
      if (p) visit(p, [...trail, s.name]);
    }
    state.set(s.name, 'done');
    out.push(s);
  };
  for (const s of stages) visit(s, []);
  return out;
}

function checkFiniteNumbers(v: unknown, at: Pointer, locations: Locations, diagnostics: Diagnostic[]): void {
  if (typeof v === 'number' && !Number.isFinite(v)) {
    diagnostics.push(locations.diagnostic(at, `Expected a finite number, but was ${v}.`));
  } else if (Array.isArray(v)) v.forEach((x, i) => checkFiniteNumbers(x, `${at}/${i}`, locations, diagnostics));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) checkFiniteNumbers(x, `${at}${pointer(k)}`, locations, diagnostics);
  }
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `a string ("${v.length > 30 ? `${v.slice(0, 27)}...` : v}")`;
  return `${typeof v === 'number' ? 'the number' : `a ${typeof v}`} ${String(v)}`;
}

const typeNames: Record<string, string> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  null: 'null',
};

function toDiagnostic(e: ErrorObject, base: Pointer, locations: Locations, where?: string): Diagnostic {
  const at = `${base}${e.instancePath}`;
  const data = e.data;
  const inWhere = where ? ` in ${where}` : '';
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys(((e.parentSchema ?? {}) as { properties?: object }).properties ?? {});
      const hint = didYouMean(key, allowed);
      return locations.diagnostic(`${at}${pointer(key)}`, `Unknown key "${key}"${inWhere}.${hint || (allowed.length ? ` Expected one of: ${allowed.join(', ')}.` : '')}`, 'key');
    }
    case 'required':
      return locations.diagnostic(at, `Missing required key "${String(params.missingProperty)}"${inWhere}.`, at === '' ? 'value' : 'key');
    case 'type': {
      const types = String(params.type).split(',').map((t) => typeNames[t] ?? t);
      return locations.diagnostic(at, `Expected ${types.join(' or ')}, but was ${describeValue(data)}.`);
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map((x) => JSON.stringify(x));
      const hint = typeof data === 'string' ? closest(data, (params.allowedValues as unknown[]).map(String)) : undefined;
      return locations.diagnostic(at, `Expected one of ${allowed.join(', ')}, but was ${JSON.stringify(data)}.${hint ? ` Did you mean "${hint}"?` : ''}`);
    }
    case 'const':
      return locations.diagnostic(at, `Expected ${JSON.stringify(params.allowedValue)}, but was ${JSON.stringify(data)}.`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return locations.diagnostic(at, `Expected a value ${String(params.comparison)} ${String(params.limit)}, but was ${String(data)}.`);
    case 'propertyNames': {
      const name = String(params.propertyName);
      return locations.diagnostic(`${at}${pointer(name)}`, `"${name}" is not a valid name: use letters, digits, "_" and "-", starting with a letter.`, 'key');
    }
    case 'not':
      return locations.diagnostic(at, `These keys cannot be used together${inWhere}: ${JSON.stringify(((e.schema ?? {}) as { required?: string[] }).required ?? [])}${where ? '' : ''}.`);
    case 'pattern':
      return locations.diagnostic(at, `Expected a string matching ${String(params.pattern)}, but was ${JSON.stringify(data)}.`);
    default: {
      return locations.diagnostic(at, `Expected the value to ${e.message ?? 'be valid'}, but was ${describeValue(data)}.`);
    }
  }
}
