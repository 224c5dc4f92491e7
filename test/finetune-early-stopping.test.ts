// The fine-tuning loop's stopping rule (src/finetune/early-stopping.ts): the
// best epoch by accuracy then loss is kept; patience counts epochs with
// neither a better epoch nor a lower validation loss.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EarlyStopping } from '../src/finetune/early-stopping.js';

const run = (patience: number | null, start: [number, number], epochs: [number, number][]) => {
  const stopping = new EarlyStopping({ valAccuracy: start[0], valLoss: start[1] }, patience);
  const verdicts: string[] = [];
  for (const [valAccuracy, valLoss] of epochs) {
    const v = stopping.observe({ valAccuracy, valLoss });
    verdicts.push(`${v.best ? 'best' : '-'}${v.stop ? ' stop' : ''}`);
    if (v.stop) break;
  }
  return verdicts;
};

test('a stalled accuracy with a falling loss is progress: training goes on', () => {
  // The accuracy of epoch 1 is not matched again, but the loss keeps falling.
  assert.deepEqual(run(2, [0.9, 0.3], [[0.92, 0.29], [0.91, 0.28], [0.9, 0.27], [0.91, 0.26], [0.91, 0.265], [0.9, 0.27]]), ['best', '-', '-', '-', '-', '- stop']);
});

test('neither a better epoch nor a lower loss for `patience` epochs stops training; a better epoch resets the count', () => {
  assert.deepEqual(run(3, [0.9, 0.3], [[0.89, 0.31], [0.89, 0.32], [0.95, 0.4], [0.9, 0.5], [0.9, 0.5], [0.9, 0.5]]), ['-', '-', 'best', '-', '-', '- stop']);
  // The same accuracy at a higher loss is no progress.
  assert.deepEqual(run(3, [0.9, 0.3], [[0.89, 0.31], [0.89, 0.32], [0.9, 0.31]]), ['-', '-', '- stop']);
  // The same accuracy at a lower loss is a better epoch.
  assert.deepEqual(run(1, [0.9, 0.3], [[0.9, 0.2], [0.9, 0.25]]), ['best', '- stop']);
  // No patience: never stops, keeps the best.
  assert.deepEqual(run(null, [0.9, 0.3], [[0.8, 0.9], [0.8, 0.9], [0.8, 0.9]]), ['-', '-', '-']);
});

test('the start is the bar: an epoch below it is never the best', () => {
  assert.deepEqual(run(5, [0.95, 0.1], [[0.94, 0.09], [0.95, 0.11], [0.93, 0.2]]), ['-', '-', '-']);
});
