// The built-in step types, registered in one place.
import type { Step } from '../runner/step.js';
import { execStep } from './exec.js';

export const builtinSteps: Step[] = [execStep];
