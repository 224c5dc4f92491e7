// The built-in step types, registered in one place.
import type { Step } from '../runner/step.js';
import { backboneStep } from './backbone.js';
import { datasetStep } from './dataset.js';
import { evaluateStep } from './evaluate.js';
import { execStep } from './exec.js';
import { exportCsvStep } from './export-csv.js';
import { exportModelStep } from './export-model.js';
import { featuresStep } from './features.js';
import { freezeStep } from './freeze.js';
import { headStep } from './head.js';
import { quantizeStep } from './quantize.js';
import { trainStep } from './train.js';
import { activationsStep } from './activations.js';
import { finetuneStep } from './finetune.js';
import { splitStep } from './split.js';
import { transformStep } from './transform.js';

export const builtinSteps: Step[] = [
  execStep,
  datasetStep,
  transformStep,
  backboneStep,
  freezeStep,
  quantizeStep,
  featuresStep,
  headStep,
  trainStep,
  splitStep,
  activationsStep,
  finetuneStep,
  evaluateStep,
  exportCsvStep,
  exportModelStep,
];
