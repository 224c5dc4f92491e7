// `device: auto | cpu | cuda` for the stages that run onnxruntime. `cuda`
// asks for the CUDA execution provider and fails with instructions when it is
// missing; `auto` uses it only when its libraries are installed and a CUDA
// session can actually be made here (an installed provider on a machine with
// no GPU, driver or CUDA libraries cannot), and says which it chose.
import { buildModel } from '../onnx/builder.js';
import { createSession, cudaProviderInstalled } from '../train/onnx.js';

export type DeviceChoice = 'auto' | 'cpu' | 'cuda';

let probe: Promise<string | undefined> | undefined;

/** Why no CUDA session can be made in this process, or undefined when one can (tried once, on a one-node model). */
export function cudaUnusableReason(): Promise<string | undefined> {
  probe ??= (async () => {
    const model = buildModel({
      name: 'cuda-probe',
      opset: 13,
      inputs: [{ name: 'x', type: 'float32', dims: [1, 1] }],
      outputs: [{ name: 'y', type: 'float32', dims: [1, 1] }],
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
    });
    try {
      await (await createSession(model, { device: 'cuda' })).release();
      return undefined;
    } catch (e) {
      const cause = (e as Error).cause;
      return (cause instanceof Error ? cause.message : String(cause ?? (e as Error).message)).split('\n')[0];
    }
  })();
  return probe;
}

export async function resolveDevice(choice: DeviceChoice, ctx: { log(message: string): void }): Promise<'cpu' | 'cuda'> {
  if (choice !== 'auto') return choice;
  if (!cudaProviderInstalled()) {
    ctx.log('device auto: the CUDA provider of onnxruntime-node is not installed, running on the CPU (see README, "CUDA")');
    return 'cpu';
  }
  const why = await cudaUnusableReason();
  if (why === undefined) return 'cuda';
  ctx.log(`device auto: the CUDA provider of onnxruntime-node is installed but cannot run here (${why}), running on the CPU (see README, "CUDA")`);
  return 'cpu';
}
