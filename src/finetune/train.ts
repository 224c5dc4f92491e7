// The fine-tuning loop: AdamW over the unfrozen top and the head together
// (the blocks at a smaller learning rate), activations read from the store
// batch by batch, early stopping on the validation split keeping the best
// epoch. Epoch 0 is the warm start itself, so the result never scores below
// where it began; a probe score given by the caller (the linear head on the
// frozen int8 features) is the bar the fine-tuned model has to clear.
import type { Device } from '../onnx/runtime.js';
import type { HeadWeights } from '../train/head.js';
import { Prng } from '../train/prng.js';
import { EarlyStopping } from './early-stopping.js';
import { FinetuneEngine, type Snapshot } from './engine.js';
import { elements, type TopNet } from './top.js';

export interface FinetuneSpec {
  epochs: number;
  batchSize: number;
  /** The head's learning rate. */
  lr: number;
  /** The unfrozen blocks' learning rate. */
  blockLr: number;
  /** AdamW's decoupled weight decay, both groups. */
  weightDecay: number;
  /** Epochs without a better validation score or a lower validation loss before stopping; null: never. */
  patience: number | null;
  seed: number;
  device: Device;
  threads?: number;
}

export interface SplitRows {
  /** Rows of the activation matrix. */
  rows: Int32Array;
  labels: Int32Array;
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number | null;
  trainAccuracy: number | null;
  valLoss: number;
  valAccuracy: number;
  seconds: number;
}

export interface FinetuneInput {
  top: TopNet;
  head: HeadWeights;
  /** Reads activation rows into a float32 buffer. */
  fetch: (rows: Int32Array, out: Float32Array) => Promise<void>;
  train: SplitRows;
  val: SplitRows;
  spec: FinetuneSpec;
  signal?: AbortSignal;
  onEpoch?: (e: EpochRecord) => void;
}

export interface FinetuneResult {
  best: Snapshot;
  bestEpoch: number;
  history: EpochRecord[];
  stoppedEarly: boolean;
  /** Predictions of the best epoch on the validation rows. */
  valPredicted: Int32Array;
}

export async function finetune(input: FinetuneInput): Promise<FinetuneResult> {
  const { spec, train, val } = input;
  const engine = await FinetuneEngine.create({ top: input.top, head: input.head, device: spec.device, optimizer: { betas: [0.9, 0.999], eps: 1e-8 }, threads: spec.threads });
  try {
    const W = elements(input.top.inputShape);
    const validate = async (epoch: number, trainLoss: number | null, trainAccuracy: number | null, started: number) => {
      const r = await engine.evaluate(val.rows, val.labels, input.fetch);
      const record: EpochRecord = { epoch, trainLoss, trainAccuracy, valLoss: r.lossSum / r.weightSum, valAccuracy: r.correct / r.count, seconds: (performance.now() - started) / 1000 };
      input.onEpoch?.(record);
      return { record, predicted: r.predicted };
    };
    const start = await validate(0, null, null, performance.now());
    const history = [start.record];
    let best = { record: start.record, snapshot: engine.snapshot(), predicted: start.predicted };
    const stopping = new EarlyStopping(start.record, spec.patience);
    let stoppedEarly = false;
    let step = 0;
    // Two buffers: the next batch is read while the current one trains.
    const buffers = [new Float32Array(spec.batchSize * W), new Float32Array(spec.batchSize * W)];
    const labels = new Int32Array(spec.batchSize);
    const rowToLabel = new Map<number, number>();
    train.rows.forEach((r, i) => rowToLabel.set(r, train.labels[i]!));
    for (let epoch = 1; epoch <= spec.epochs; epoch++) {
      const started = performance.now();
      const order = new Prng(spec.seed, epoch).shuffle(Int32Array.from(train.rows.keys()));
      const batches = Math.ceil(order.length / spec.batchSize);
      const batchRows = (b: number) => {
        const picked = order.subarray(b * spec.batchSize, (b + 1) * spec.batchSize);
        // Ascending within the batch: neighbouring rows are read in one call; the set is what matters.
        return Int32Array.from(picked, (i) => train.rows[i]!).sort();
      };
      const picks = (b: number) => {
        const rows = batchRows(b);
        const read = input.fetch(rows, buffers[b % 2]!);
        // Awaited below; a read still in flight when training stops must not become an unhandled rejection.
        read.catch(() => undefined);
        return { rows, read };
      };
      let lossSum = 0;
      let correct = 0;
      let next = picks(0);
      try {
        for (let b = 0; b < batches; b++) {
          if (input.signal?.aborted) throw input.signal.reason;
          const current = next;
          await current.read;
          if (b + 1 < batches) next = picks(b + 1);
          const n = current.rows.length;
          for (let i = 0; i < n; i++) labels[i] = rowToLabel.get(current.rows[i]!)!;
          const out = await engine.step(buffers[b % 2]!, labels, n, { blockLr: spec.blockLr, headLr: spec.lr, weightDecay: spec.weightDecay, step: ++step });
          lossSum += out.loss * n;
          correct += out.correct;
        }
      } finally {
        // The caller closes the file once this returns: let the prefetched read finish first.
        await next.read.catch(() => undefined);
      }
      const { record, predicted } = await validate(epoch, lossSum / order.length, correct / order.length, started);
      history.push(record);
      const verdict = stopping.observe(record);
      if (verdict.best) best = { record, snapshot: engine.snapshot(), predicted };
      if (verdict.stop) {
        stoppedEarly = epoch < spec.epochs;
        break;
      }
    }
    return { best: best.snapshot, bestEpoch: best.record.epoch, history, stoppedEarly, valPredicted: best.predicted };
  } finally {
    await engine.dispose();
  }
}
