// A queue worker's sessions (src/cluster/sessions.ts) choose spinning from
// the model's timed cost, as the features stage does (src/features/threads.ts):
// the pool reports the cost it measured and the choice it made from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { attr, buildModel } from '../src/onnx/builder.js';
import { SessionCache } from '../src/cluster/sessions.js';
import { inferenceDominates, machineBusy } from '../src/features/threads.js';
import { seededTensors } from './support/seeded-tensors.js';
import { tempDir } from './support/tmp.js';

const { floats } = seededTensors(3);

test("a worker's CPU session times the model and chooses spinning from that cost", async () => {
  const dir = await tempDir();
  const model = path.join(dir, 'small.onnx');
  await writeFile(
    model,
    buildModel({
      opset: 13,
      nodes: [
        { op: 'Conv', name: 'c', inputs: ['image', 'w'], outputs: ['c_out'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
        { op: 'GlobalAveragePool', name: 'gap', inputs: ['c_out'], outputs: ['g'] },
        { op: 'Flatten', name: 'flat', inputs: ['g'], outputs: ['features'], attrs: { axis: attr.int(1) } },
      ],
      inputs: [{ name: 'image', type: 'float32', dims: ['N', 3, 32, 32] }],
      outputs: [{ name: 'features', type: 'float32', dims: ['N', 4] }],
      initializers: [floats('w', [4, 3, 3, 3])],
    }),
  );
  const sessions = new SessionCache();
  try {
    const pool = sessions.get(model, 'cpu', 1);
    const cost = (await pool.ready).cost;
    assert.ok(cost, 'the session was made without timing the model');
    assert.ok(cost.cpuMsPerImage !== undefined && cost.cpuMsPerImage > 0, JSON.stringify(cost));
    // A tiny model: decoding would dominate, so no spinning, whatever the load.
    assert.equal(cost.inferenceDominates, inferenceDominates(cost.cpuMsPerImage));
    assert.equal(cost.inferenceDominates, false);
    assert.equal(cost.machineBusy, machineBusy(cost.loadAverage));
    assert.equal(cost.spinning, false);
    assert.equal(sessions.get(model, 'cpu', 1), pool, 'the session is reused for the next job');
  } finally {
    await sessions.closeAll();
  }
});
