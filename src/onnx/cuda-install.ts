// How a user opts in to onnxruntime-node's CUDA provider libraries. Installs
// run no dependency scripts (.npmrc: ignore-scripts=true), so the opt-in runs
// onnxruntime-node's own install script once, explicitly, with its CUDA flag.
// One definition, quoted by every message that mentions it and by the README
// (test/install.test.ts checks both).
export const CUDA_INSTALL_COMMAND = 'ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false';
