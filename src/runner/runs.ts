// Run records: one JSON file per `tlpipe run`, saying what ran, with which
// parameters, from which commit, and what came out.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from './errors.js';
import type { StageOutcome } from './outcome.js';
import { canonicalJson, sha256 } from './fingerprint.js';
import { maskSecrets } from './secrets.js';
import type { Json } from './step.js';
import type { ArtifactStore } from './store.js';

export const RUN_FORMAT = 1;

export interface RunRecord {
  format: number;
  id: string;
  startedAt: string;
  finishedAt: string;
  status: 'succeeded' | 'failed' | 'interrupted';
  pipeline: { name: string; file: string; sha256: string; extends: string[] };
  params: Record<string, unknown>;
  /** Overrides given on the command line (`--set`), masked like params. */
  set: string[];
  git: { commit: string; dirty: boolean } | null;
  stages: StageOutcome[];
  /** Files written outside the store, relative to the project. */
  outputs: string[];
  warnings: string[];
  /** sha256 of the record's canonical JSON without this field: a damaged record is detected, not shown. */
  checksum?: string;
}

function recordChecksum(record: RunRecord): string {
  const { checksum: _checksum, ...rest } = record;
  return sha256(canonicalJson(rest));
}

export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** stdout of a git command in `dir`. Plain execFile, not execa: loading execa costs every run tens of ms, and two fixed git queries need none of its features. */
function git(dir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd: dir, timeout: 5000, windowsHide: true }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });
}

export async function gitState(dir: string): Promise<RunRecord['git']> {
  try {
    const [commit, status] = await Promise.all([git(dir, ['rev-parse', 'HEAD']), git(dir, ['status', '--porcelain', '--untracked-files=no'])]);
    return { commit: commit.trim(), dirty: status.trim().length > 0 };
  } catch {
    return null;
  }
}

export class RunRecords {
  constructor(private readonly store: ArtifactStore) {}

  private get dir(): string {
    return path.join(this.store.root, 'runs');
  }

  async save(record: RunRecord): Promise<void> {
    // The checksum is taken over the JSON form, as list() reads it back.
    const plain = JSON.parse(JSON.stringify(maskSecrets(record))) as RunRecord;
    plain.checksum = recordChecksum(plain);
    await this.store.writeAtomic(path.join(this.dir, `${record.id}.json`), `${JSON.stringify(plain, null, 1)}\n`);
  }

  /** All readable records, oldest first; unreadable ones are reported and left alone. */
  async list(): Promise<RunRecord[]> {
    const names = (await fs.readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
    const out: RunRecord[] = [];
    for (const name of names) {
      try {
        const r = JSON.parse(await fs.readFile(path.join(this.dir, name), 'utf8')) as RunRecord;
        if (r.format !== RUN_FORMAT || typeof r.id !== 'string' || !Array.isArray(r.stages)) throw new Error('unexpected shape');
        if (r.checksum !== recordChecksum(r)) throw new Error('its checksum does not match its content');
        out.push(r);
      } catch (e) {
        this.store.warn(`Run record ${name} is unreadable (${(e as Error).message}); it is ignored.`);
      }
    }
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  }

  /** A run by id, unique id prefix, or `last` / `last~N`. */
  async find(ref: string): Promise<RunRecord> {
    const all = await this.list();
    if (!all.length) throw new UsageError('No runs recorded yet in this cache. Run a pipeline first: tlpipe run FILE');
    const last = /^last(?:~(\d+))?$/.exec(ref);
    if (last) {
      const r = all[all.length - 1 - Number(last[1] ?? 0)];
      if (!r) throw new UsageError(`There are only ${all.length} recorded runs.`);
      return r;
    }
    const matches = all.filter((r) => r.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (!matches.length) throw new UsageError(`No run "${ref}". See the ids with: tlpipe runs`);
    throw new UsageError(`"${ref}" matches ${matches.length} runs (${matches.slice(0, 3).map((r) => r.id).join(', ')}...); give more of the id.`);
  }
}

export function pipelineHash(texts: string[]): string {
  return sha256(texts.join('\0'));
}

export function metricsOf(record: RunRecord): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const s of record.stages) for (const [k, v] of Object.entries(s.metrics ?? {})) out[`${s.name}.${k}`] = v;
  return out;
}
