#!/usr/bin/env node
// Entry point, CommonJS on purpose. Image decoding runs on libuv's threadpool,
// whose size is read once, when the pool first starts — and loading ES modules
// already starts it. A CommonJS entry runs before that, so it can size the
// pool for this machine (the same rule as planThreads in src/features/threads.ts:
// one decoder per core plus one, and one thread for file reads).
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');

if (!process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, os.availableParallelism() + 2));
}

/**
 * The start-up bundle (src/write-bundle.ts) when it was built after tsc's last
 * output, else tsc's per-file output: a `tsc` without the bundling step (an
 * editor's watch mode) never leaves the command line running stale code.
 */
function entry(): string {
  const dist = path.join(__dirname, '..');
  try {
    const bundle = fs.statSync(path.join(dist, 'cli', 'cli.js')).mtimeMs;
    const compiled = fs.statSync(path.join(dist, '.tsbuildinfo')).mtimeMs;
    if (bundle >= compiled) return '../cli/cli.js';
  } catch {
    // No bundle (or no build info): the per-file output.
  }
  return './cli.js';
}

void import(entry());
