// A worker's copies of the models its jobs name by sha256: fetched from the
// remote once, verified as they arrive, and checked again before each job,
// so a copy that changed on disk (a byte flipped, a file replaced) makes the
// worker refuse instead of contributing features of another model.
import fs from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../runner/errors.js';
import { hashFile } from '../runner/store.js';
import type { Exchange } from './exchange.js';
import type { Requirements } from './feature-job.js';

export type ModelCopy = { ok: true; path: string } | { ok: false; refuse: boolean; reason: string };

export class ModelCache {
  /** Verified copies by path: size and mtime when last hashed. */
  readonly #verified = new Map<string, { size: number; mtimeMs: number }>();

  constructor(
    readonly dir: string,
    private readonly exchange: Exchange,
  ) {}

  pathOf(sha: string): string {
    return path.join(this.dir, `${sha}.onnx`);
  }

  /** The verified local copy of the model, fetched if absent; or why not. */
  async ensure(model: Requirements['model']): Promise<ModelCopy> {
    const file = this.pathOf(model.sha256);
    const st = await fs.stat(file).catch(() => undefined);
    if (st) return this.check(file, model, st);
    let problem: string | undefined;
    try {
      problem = await this.exchange.fetchModel(model, file);
    } catch (e) {
      // The remote is down or refusing: not this worker's fault; it looks again later.
      return { ok: false, refuse: false, reason: `the remote ${this.exchange.name} cannot give model ${model.sha256.slice(0, 12)}… now (${errorMessage(e)})` };
    }
    if (problem) return { ok: false, refuse: false, reason: problem };
    const now = await fs.stat(file);
    this.#verified.set(file, { size: now.size, mtimeMs: now.mtimeMs });
    return { ok: true, path: file };
  }

  private async check(file: string, model: Requirements['model'], st: { size: number; mtimeMs: number }): Promise<ModelCopy> {
    const known = this.#verified.get(file);
    if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) return { ok: true, path: file };
    const got = await hashFile(file);
    if (got !== model.sha256) {
      this.#verified.delete(file);
      return {
        ok: false,
        refuse: true,
        reason: `its copy of the model ${file} has sha256 ${got.slice(0, 12)}…, the job needs ${model.sha256.slice(0, 12)}… (delete the file to fetch a fresh copy)`,
      };
    }
    this.#verified.set(file, { size: st.size, mtimeMs: st.mtimeMs });
    return { ok: true, path: file };
  }
}
