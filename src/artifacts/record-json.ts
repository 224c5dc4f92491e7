// Checked reading of artifact values as a run record holds them: untyped
// JSON, possibly written by an older version, so every field is checked and
// a malformed piece is left out rather than failing the reader.
import type { Json } from '../runner/step.js';

export type JsonObject = { [key: string]: Json };

export const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
export const num = (v: Json | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
export const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);
export const strings = (v: Json | undefined): string[] => (Array.isArray(v) ? v.map(str).filter((s): s is string => s !== null) : []);
