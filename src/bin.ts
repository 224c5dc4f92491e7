#!/usr/bin/env node
// Entry point. Image decoding runs on libuv's threadpool, whose size is read
// once, at its first use: set it for this machine before anything loads.
import { planThreads } from './features/threads.js';

process.env.UV_THREADPOOL_SIZE ??= String(planThreads().uvThreadpoolSize);
await import('./cli.js');
