#!/usr/bin/env node
// Entry point, CommonJS on purpose. Image decoding runs on libuv's threadpool,
// whose size is read once, when the pool first starts — and loading ES modules
// already starts it. A CommonJS entry runs before that, so it can size the
// pool for this machine (the same rule as planThreads in src/features/threads.ts:
// one decoder per core plus one, and one thread for file reads).
import os = require('node:os');

if (!process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, os.availableParallelism() + 2));
}
void import('./cli.js');
