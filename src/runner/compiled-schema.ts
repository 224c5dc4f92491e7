// JSON Schema validators, compiled once per schema and kept. Compiling with
// ajv generates and parses a lot of code (most of a cached run's start-up);
// the generated source (ajv's standalone code) is cached by the hash of the
// schema, the options and ajv's version, so later runs only evaluate it and
// never load ajv's compiler. A cache that cannot be written just means
// compiling each time.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import { keepInUserCache, userCacheDir } from './user-cache.js';

export interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

export interface ValidatorOptions {
  allErrors?: boolean;
  useDefaults?: boolean;
  strict?: boolean;
  verbose?: boolean;
}

const require = createRequire(import.meta.url);
/** Bump when the way code is generated or cached here changes. */
const CACHE_FORMAT = 1;
const ajvVersion = (require('ajv/package.json') as { version: string }).version;

export function validatorCacheDir(env: Record<string, string | undefined> = process.env): string {
  return path.join(userCacheDir(env), 'validators');
}

function generate(schema: object, options: ValidatorOptions): string {
  const { Ajv } = require('ajv') as typeof import('ajv');
  const standalone = (require('ajv/dist/standalone') as { default: (ajv: unknown, v: unknown) => string }).default;
  const ajv = new Ajv({ ...options, code: { source: true } });
  return standalone(ajv, ajv.compile(schema));
}

function evaluate(source: string): Validator {
  const module = { exports: {} as { default?: Validator } & Validator };
  // The generated code is CommonJS; it requires ajv's small runtime helpers only.
  new Function('require', 'module', 'exports', source)(require, module, module.exports);
  return module.exports.default ?? module.exports;
}

const compiled = new Map<string, Validator>();

export function compileSchema(schema: object, options: ValidatorOptions): Validator {
  const key = createHash('sha256').update(JSON.stringify([CACHE_FORMAT, ajvVersion, options, schema])).digest('hex');
  const known = compiled.get(key);
  if (known) return known;
  const file = path.join(validatorCacheDir(), `${key}.cjs`);
  let validator: Validator | undefined;
  try {
    validator = evaluate(readFileSync(file, 'utf8'));
  } catch {
    // Not cached yet (or unreadable, or damaged): compile and keep it.
  }
  if (!validator) {
    const source = generate(schema, options);
    validator = evaluate(source);
    keepInUserCache(file, source);
  }
  compiled.set(key, validator);
  return validator;
}
