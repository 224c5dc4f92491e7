// Which remote a command uses. Remotes are named once in the project config
// file (tlpipe.json beside the pipelines' project folder, meant to be
// committed: URLs and settings only, never credentials); one command picks
// another with --remote NAME|URL or TLPIPE_REMOTE, and --no-remote turns it off.
import fs from 'node:fs/promises';
import path from 'node:path';
import { describeFsError, StoreError, UsageError } from '../runner/errors.js';
import { type RemoteLocation, parseRemoteUrl } from './url.js';

export const CONFIG_FILE = 'tlpipe.json';

export interface RemoteSettings {
  url: string;
  /** Pull only: runs never push to it (laptops reading what CI wrote). */
  readOnly?: boolean;
}

export interface ProjectConfig {
  remotes?: { [name: string]: RemoteSettings };
  defaultRemote?: string;
  [other: string]: unknown;
}

export interface ResolvedRemote {
  /** The configured name, or the URL itself when given as one. */
  name: string;
  location: RemoteLocation;
  readOnly: boolean;
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export function configPath(projectDir: string): string {
  return path.join(projectDir, CONFIG_FILE);
}

export async function readConfig(projectDir: string): Promise<ProjectConfig> {
  const file = configPath(projectDir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`Cannot read ${file}: ${(e as Error).message}`);
  }
  let config: ProjectConfig;
  try {
    config = JSON.parse(text) as ProjectConfig;
  } catch (e) {
    throw new UsageError(`${file} is not valid JSON (${(e as Error).message}); fix it or remove it.`);
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new UsageError(`${file} must hold a JSON object.`);
  for (const [name, r] of Object.entries(config.remotes ?? {})) {
    if (!r || typeof r.url !== 'string') throw new UsageError(`${file}: remote "${name}" has no "url".`);
  }
  return config;
}

async function writeConfig(projectDir: string, config: ProjectConfig): Promise<void> {
  const file = configPath(projectDir);
  const tmp = `${file}.tlpipe-tmp-${process.pid}`;
  try {
    await fs.writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw new StoreError(describeFsError(e, `writing ${file}`), { cause: e });
  }
}

export async function addRemote(projectDir: string, name: string, url: string, options: { makeDefault?: boolean; readOnly?: boolean }): Promise<ProjectConfig> {
  if (!NAME.test(name)) throw new UsageError(`Remote name "${name}" must start with a letter and hold only letters, digits, "_" and "-".`);
  const location = parseRemoteUrl(url);
  const config = await readConfig(projectDir);
  const remotes = { ...(config.remotes ?? {}) };
  remotes[name] = { url: location.url, ...(options.readOnly ? { readOnly: true } : {}) };
  const next: ProjectConfig = { ...config, remotes };
  if (options.makeDefault || Object.keys(remotes).length === 1) next.defaultRemote = name;
  await writeConfig(projectDir, next);
  return next;
}

export async function removeRemote(projectDir: string, name: string): Promise<ProjectConfig> {
  const config = await readConfig(projectDir);
  if (!config.remotes?.[name]) throw new UsageError(`No remote named "${name}" in ${configPath(projectDir)}. See: tlpipe remote list`);
  const { [name]: _gone, ...remotes } = config.remotes;
  const next: ProjectConfig = { ...config, remotes };
  if (next.defaultRemote === name) delete next.defaultRemote;
  await writeConfig(projectDir, next);
  return next;
}

export interface RemoteChoice {
  /** --remote NAME|URL */
  remote?: string;
  /** --no-remote */
  off?: boolean;
  /** --remote-read-only */
  readOnly?: boolean;
}

/** The remote this command uses, or undefined for none. */
export async function resolveRemote(projectDir: string, choice: RemoteChoice, env = process.env): Promise<ResolvedRemote | undefined> {
  if (choice.off) return undefined;
  const config = await readConfig(projectDir);
  const asked = choice.remote ?? (env.TLPIPE_REMOTE || undefined);
  const readOnlyEnv = env.TLPIPE_REMOTE_READ_ONLY === '1' || env.TLPIPE_REMOTE_READ_ONLY === 'true';
  const fromName = (name: string): ResolvedRemote => {
    const r = config.remotes?.[name];
    if (!r) {
      const known = Object.keys(config.remotes ?? {});
      throw new UsageError(`No remote named "${name}"${known.length ? ` (configured: ${known.join(', ')})` : ''}. Add it with: tlpipe remote add ${name} URL`);
    }
    return { name, location: parseRemoteUrl(r.url), readOnly: Boolean(r.readOnly || choice.readOnly || readOnlyEnv) };
  };
  if (asked !== undefined) {
    if (asked.includes('://')) return { name: parseRemoteUrl(asked).url, location: parseRemoteUrl(asked), readOnly: Boolean(choice.readOnly || readOnlyEnv) };
    return fromName(asked);
  }
  if (config.defaultRemote) return fromName(config.defaultRemote);
  return undefined;
}
