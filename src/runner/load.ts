// Loading a pipeline file: YAML → plain values with every node's source
// position kept, `extends:` merged, `--set` overrides applied and `${...}`
// interpolated. Validation happens after this, in analyze.ts, so that every
// error can still point at the line the value came from.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, parse as parseYaml, type Node } from 'yaml';
import { type Diagnostic, type SourceFile, closest, didYouMean } from './diagnostic.js';
import { PipelineInvalid, UsageError } from './errors.js';

/** Where a value (and its key, for map entries) was written. */
export interface Location {
  file: SourceFile;
  start: number;
  end: number;
  keyStart?: number;
  keyEnd?: number;
}

export type Pointer = string;

export const pointer = (...parts: (string | number)[]): Pointer =>
  parts.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

export class Locations {
  private readonly map = new Map<Pointer, Location>();
  set(p: Pointer, loc: Location): void {
    this.map.set(p, loc);
  }
  /** The location of `p`, or of its nearest ancestor that has one. */
  get(p: Pointer): Location | undefined {
    for (let q = p; ; q = q.slice(0, q.lastIndexOf('/'))) {
      const loc = this.map.get(q);
      if (loc) return loc;
      if (q === '') return undefined;
    }
  }
  /** Drops the entries below `p` (its subtree was replaced). */
  dropBelow(p: Pointer): void {
    for (const k of [...this.map.keys()]) if (k.startsWith(`${p}/`)) this.map.delete(k);
  }
  /** `p` and everything below it. */
  subtree(p: Pointer): [Pointer, Location][] {
    return [...this.map].filter(([k]) => k === p || k.startsWith(`${p}/`));
  }
  diagnostic(p: Pointer, message: string, at: 'key' | 'value' = 'value'): Diagnostic {
    const loc = this.get(p);
    if (!loc) throw new Error(`no location for ${p}`);
    const useKey = at === 'key' && loc.keyStart !== undefined;
    return {
      file: loc.file,
      start: useKey ? loc.keyStart! : loc.start,
      end: useKey ? loc.keyEnd! : loc.end,
      message,
    };
  }
}

export interface LoadedSource {
  /** The merged, overridden and interpolated pipeline, not validated yet. */
  value: Record<string, unknown>;
  locations: Locations;
  /** The pipeline file and every file it extends, in load order. */
  files: SourceFile[];
  /** Parameter values as resolved (after --set and interpolation). */
  params: Record<string, unknown>;
  /** Problems that do not stop analysis (unresolved `${...}`, bad --set keys); reported with its own. */
  diagnostics: Diagnostic[];
}

export interface LoadOptions {
  set?: string[];
  env?: Record<string, string | undefined>;
}

export async function loadPipelineSource(file: string, options: LoadOptions = {}): Promise<LoadedSource> {
  const files: SourceFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const loaded = await loadWithExtends(path.resolve(file), files, diagnostics, []);
  if (diagnostics.length || !loaded) throw new PipelineInvalid(diagnostics);
  const { value, locations } = loaded;
  applySets(value, locations, options.set ?? [], diagnostics);
  const params = interpolateAll(value, locations, options.env ?? process.env, diagnostics);
  return { value, locations, files, params, diagnostics };
}

async function readSource(file: string, from?: Diagnostic): Promise<SourceFile> {
  try {
    return { path: file, text: await readFile(file, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'not found' : code === 'EISDIR' ? 'is a folder' : `cannot be read (${code})`;
    if (from) throw new PipelineInvalid([{ ...from, message: `${from.message}: ${file} ${what}.` }]);
    throw new UsageError(`Pipeline file ${file} ${what}. Check the path (it is relative to the current folder).`);
  }
}

async function loadWithExtends(
  file: string,
  files: SourceFile[],
  diagnostics: Diagnostic[],
  chain: string[],
  extendsAt?: Diagnostic,
): Promise<{ value: Record<string, unknown>; locations: Locations } | undefined> {
  const source = await readSource(file, extendsAt);
  files.push(source);
  const parsed = parseYamlWithLocations(source, diagnostics);
  if (!parsed) return undefined;
  const { value, locations } = parsed;
  const base = value.extends;
  if (base === undefined) return parsed;
  const at = locations.diagnostic(pointer('extends'), '');
  if (typeof base !== 'string') {
    diagnostics.push({ ...at, message: 'Expected "extends" to be the path of another pipeline file.' });
    return undefined;
  }
  const basePath = path.resolve(path.dirname(file), base);
  if (basePath === file || chain.includes(basePath)) {
    diagnostics.push({ ...at, message: `"extends" makes a cycle: ${[...chain, file, basePath].map((f) => path.basename(f)).join(' → ')}.` });
    return undefined;
  }
  const parent = await loadWithExtends(basePath, files, diagnostics, [...chain, file], {
    ...at,
    message: `Cannot extend "${base}"`,
  });
  if (!parent) return undefined;
  delete value.extends;
  mergeInto(parent.value, value, '', parent.locations, locations);
  return parent;
}

function parseYamlWithLocations(
  source: SourceFile,
  diagnostics: Diagnostic[],
): { value: Record<string, unknown>; locations: Locations } | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    for (const err of doc.errors) {
      let [start, end] = err.pos;
      // Point at the offending token, not at the indentation before it.
      while (start < source.text.length && source.text[start] === ' ') start++;
      end = Math.max(end, start + 1);
      diagnostics.push({ file: source, start, end, message: `YAML syntax error: ${firstLine(err.message)}` });
    }
    return undefined;
  }
  try {
    // Aliases are expanded below: refuse a "billion laughs" document before it explodes.
    doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    diagnostics.push({ file: source, start: 0, end: 1, message: `YAML: ${firstLine((e as Error).message)}` });
    return undefined;
  }
  const locations = new Locations();
  const root = doc.contents;
  if (!isMap(root)) {
    const start = root?.range?.[0] ?? 0;
    diagnostics.push({
      file: source,
      start,
      end: root?.range?.[1] ?? start + 1,
      message: 'Expected a pipeline: a mapping with "tlpipe", "name" and "stages" keys.',
    });
    return undefined;
  }
  locations.set('', { file: source, start: root.range?.[0] ?? 0, end: root.range?.[1] ?? 0 });
  const value = toPlain(root, source, '', locations, doc) as Record<string, unknown>;
  return { value, locations };
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

function toPlain(node: unknown, file: SourceFile, at: Pointer, locations: Locations, doc: { toJS?: unknown }): unknown {
  if (isAlias(node)) return toPlain(node.resolve(doc as never), file, at, locations, doc);
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
      const valueNode = pair.value as Node | null;
      const p = `${at}${pointer(key)}`;
      const keyRange = keyNode?.range ?? [0, 0];
      const valueRange = valueNode?.range ?? keyRange;
      locations.set(p, { file, start: valueRange[0], end: valueRange[1], keyStart: keyRange[0], keyEnd: keyRange[1] });
      out[key] = valueNode === null ? null : toPlain(valueNode, file, p, locations, doc);
    }
    return out;
  }
  if (isSeq(node)) {
    return node.items.map((item, i) => {
      const n = item as Node;
      const p = `${at}${pointer(i)}`;
      if (n?.range) locations.set(p, { file, start: n.range[0], end: n.range[1] });
      return toPlain(n, file, p, locations, doc);
    });
  }
  if (isScalar(node)) return node.value;
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Objects merge key by key; anything else in `over` replaces what `base` had. */
function mergeInto(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
  at: Pointer,
  baseLocations: Locations,
  overLocations: Locations,
): void {
  for (const [key, value] of Object.entries(over)) {
    const p = `${at}${pointer(key)}`;
    const loc = overLocations.get(p);
    if (value === null) {
      // `key: null` in a file that extends another removes the key it inherits.
      delete base[key];
      baseLocations.dropBelow(p);
    } else if (isObject(value) && isObject(base[key])) {
      if (loc) baseLocations.set(p, loc);
      mergeInto(base[key] as Record<string, unknown>, value, p, baseLocations, overLocations);
    } else {
      base[key] = value;
      baseLocations.dropBelow(p);
      for (const [q, l] of overLocations.subtree(p)) baseLocations.set(q, l);
    }
  }
}

/**
 * `--set key=value`: `key` is a parameter name (`lr`), a stage parameter
 * (`train.epochs`, i.e. stages.train.with.epochs) or a full dotted path
 * (`params.lr`, `stages.train.with.epochs`). Values are YAML scalars.
 */
function applySets(value: Record<string, unknown>, locations: Locations, sets: string[], diagnostics: Diagnostic[]): void {
  const params = isObject(value.params) ? value.params : {};
  const stages = isObject(value.stages) ? value.stages : {};
  for (const assignment of sets) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects key=value, got "${assignment}".`);
    const key = assignment.slice(0, eq);
    const text = assignment.slice(eq + 1);
    const file: SourceFile = { path: '--set', text: assignment };
    const parsed = parseScalar(text);
    const parts = key.split('.');
    let target: string[];
    if (parts[0] === 'params' || parts[0] === 'stages') target = parts;
    else if (parts.length === 1 && parts[0]! in params) target = ['params', parts[0]!];
    else if (parts.length > 1 && parts[0]! in stages) target = ['stages', parts[0]!, 'with', ...parts.slice(1)];
    else {
      const candidates = [...Object.keys(params), ...Object.keys(stages).map((s) => `${s}.`)];
      const hint = parts.length === 1 ? didYouMean(key, Object.keys(params)) : didYouMean(parts[0]!, Object.keys(stages));
      diagnostics.push({
        file,
        start: 0,
        end: eq,
        message: `"${key}" is neither a parameter nor a stage of this pipeline.${hint}${candidates.length && !hint ? ` Parameters: ${Object.keys(params).join(', ') || '(none)'}.` : ''}`,
      });
      continue;
    }
    let obj: Record<string, unknown> = value;
    for (const part of target.slice(0, -1)) {
      if (!isObject(obj[part])) obj[part] = {};
      obj = obj[part] as Record<string, unknown>;
    }
    const p = pointer(...target);
    locations.dropBelow(p);
    if (parsed === null) {
      // `--set dataset.test=null` removes the key, as `key: null` does in `extends:`.
      delete obj[target.at(-1)!];
      continue;
    }
    obj[target.at(-1)!] = parsed;
    locations.set(p, { file, start: eq + 1, end: assignment.length, keyStart: 0, keyEnd: eq });
  }
}

export function parseScalar(text: string): unknown {
  try {
    const v = parseYaml(text);
    return v === undefined ? null : v;
  } catch {
    return text;
  }
}

/**
 * Resolves `${param}`, `${param:-default}`, `${env.NAME}` and `${env.NAME:-default}`.
 * Parameters may only use the environment; stages may use both. `$${` is a literal `${`.
 * A value that is exactly one `${param}` keeps the parameter's type.
 */
function interpolateAll(
  value: Record<string, unknown>,
  locations: Locations,
  env: Record<string, string | undefined>,
  diagnostics: Diagnostic[],
): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  if (isObject(value.params)) {
    for (const [k, v] of Object.entries(value.params)) {
      params[k] = interpolateValue(v, pointer('params', k), locations, env, undefined, diagnostics);
    }
    value.params = params;
  }
  for (const key of Object.keys(value)) {
    if (key === 'params') continue;
    value[key] = interpolateValue(value[key], pointer(key), locations, env, params, diagnostics);
  }
  return params;
}

function interpolateValue(
  v: unknown,
  at: Pointer,
  locations: Locations,
  env: Record<string, string | undefined>,
  params: Record<string, unknown> | undefined,
  diagnostics: Diagnostic[],
): unknown {
  if (Array.isArray(v)) return v.map((x, i) => interpolateValue(x, `${at}${pointer(i)}`, locations, env, params, diagnostics));
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = interpolateValue(x, `${at}${pointer(k)}`, locations, env, params, diagnostics);
    return out;
  }
  if (typeof v !== 'string' || !v.includes('${')) return v;

  const resolve = (expr: string): unknown => {
    const m = /^\s*([A-Za-z_][\w.-]*)\s*(?::-(.*))?$/s.exec(expr);
    const fail = (message: string) => {
      diagnostics.push(locations.diagnostic(at, message));
      return '';
    };
    if (!m) return fail(`Cannot resolve "\${${expr}}": expected \${param}, \${param:-default}, \${env.NAME} or \${env.NAME:-default}.`);
    const [, name, fallback] = m as unknown as [string, string, string | undefined];
    if (name.startsWith('env.')) {
      const envValue = env[name.slice(4)];
      if (envValue !== undefined && envValue !== '') return envValue;
      if (fallback !== undefined) return fallback;
      return fail(`Environment variable ${name.slice(4)} is not set and "\${${expr}}" has no default. Set it, or write \${${name}:-default}.`);
    }
    if (!params) return fail(`Parameters cannot refer to other parameters ("\${${expr}}"); only \${env.NAME} is allowed here.`);
    if (name in params) return params[name];
    if (fallback !== undefined) return parseScalar(fallback);
    return fail(`Unknown parameter "${name}" in "\${${expr}}".${didYouMean(name, Object.keys(params))}${closest(name, Object.keys(params)) ? '' : ` Declare it under "params:".`}`);
  };

  const whole = /^\$\{([^}]*)\}$/.exec(v);
  if (whole) return resolve(whole[1]!);
  const out = v.replace(/\$\$\{|\$\{([^}]*)\}/g, (match, expr: string | undefined) => {
    if (match === '$${') return '${';
    const r = resolve(expr!);
    return typeof r === 'string' ? r : JSON.stringify(r);
  });
  return out;
}
