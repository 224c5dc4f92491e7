// What this install's sharp is — its versions and the formats it reads from
// files — remembered per install (in the user cache), so that a cached run or
// a `status`, which need only these facts, never load sharp's native module
// (tens of ms). The memo is keyed by the stat of sharp's package.json and of
// its native packages' (@img/sharp-*), which every install replaces; where
// the layout is not the usual one, sharp is simply loaded.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type sharp from 'sharp';
import { keepInUserCache, userCacheDir } from '../runner/user-cache.js';

const require = createRequire(import.meta.url);

export interface SharpBuild {
  versions: { sharp: string; libvips: string; jpeg: string };
  /** Format id → whether it reads from a file, and its file suffixes. */
  inputFormats: Record<string, { file: boolean; fileSuffix: string[] }>;
}

/** Bump when what is remembered changes. */
const MEMO_FORMAT = 1;

function statStamp(file: string): string {
  const st = statSync(file);
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function installStamp(): string | undefined {
  try {
    const pkg = require.resolve('sharp/package.json');
    const parts = [String(MEMO_FORMAT), pkg, statStamp(pkg)];
    const scope = path.join(path.dirname(path.dirname(pkg)), '@img');
    for (const name of readdirSync(scope).sort()) {
      if (name.startsWith('sharp-')) parts.push(name, statStamp(path.join(scope, name, 'package.json')));
    }
    const fromSource = path.join(path.dirname(pkg), 'src', 'build', 'Release');
    if (existsSync(fromSource)) parts.push(statStamp(fromSource));
    return parts.join('|');
  } catch {
    return undefined;
  }
}

function loadFacts(): SharpBuild {
  const s = require('sharp') as typeof sharp;
  const v = s.versions as Record<string, string | undefined>;
  const inputFormats: SharpBuild['inputFormats'] = {};
  for (const [id, info] of Object.entries(s.format as unknown as Record<string, sharp.AvailableFormatInfo>)) {
    inputFormats[id] = { file: Boolean(info.input.file), fileSuffix: [...(info.input.fileSuffix ?? [])] };
  }
  return { versions: { sharp: v.sharp ?? '?', libvips: v.vips ?? '?', jpeg: v.mozjpeg ?? '?' }, inputFormats };
}

let facts: SharpBuild | undefined;

export function sharpBuild(memoFile = path.join(userCacheDir(), 'sharp-build.json')): SharpBuild {
  if (facts) return facts;
  const stamp = installStamp();
  if (stamp) {
    try {
      const known = JSON.parse(readFileSync(memoFile, 'utf8')) as { stamp: string; build: SharpBuild };
      if (known.stamp === stamp) return (facts = known.build);
    } catch {
      // Not remembered yet, or damaged: load sharp once.
    }
  }
  facts = loadFacts();
  if (stamp) keepInUserCache(memoFile, JSON.stringify({ stamp, build: facts }));
  return facts;
}
