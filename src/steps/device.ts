// `device: auto | cpu | cuda` for the stages that run onnxruntime. `cuda`
// asks for the CUDA execution provider and fails with instructions when it is
// missing; `auto` uses it only when its libraries are installed, and says so.
import { cudaProviderInstalled } from '../train/onnx.js';

export type DeviceChoice = 'auto' | 'cpu' | 'cuda';

export function resolveDevice(choice: DeviceChoice, ctx: { log(message: string): void }): 'cpu' | 'cuda' {
  if (choice !== 'auto') return choice;
  if (cudaProviderInstalled()) return 'cuda';
  ctx.log('device auto: the CUDA provider of onnxruntime-node is not installed, running on the CPU (see README, "CUDA")');
  return 'cpu';
}
