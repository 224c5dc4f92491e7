// Every artifact kind, by name: what steps may declare in `produces` and
// `inputs.NAME.kind`.
import { backboneKind } from './backbone.js';
import { commandOutputKind } from './command-output.js';
import { datasetManifestKind } from './dataset-manifest.js';
import { evaluationKind } from './evaluation.js';
import { exportedModelKind } from './exported-model.js';
import { featureModelKind } from './feature-model.js';
import { featuresKind } from './features.js';
import { headKind, trainedHeadKind } from './head.js';
import type { ArtifactKind } from './kind.js';
import { predictionsKind } from './predictions.js';
import { transformKind } from './transform.js';
import { activationsKind } from './activations.js';
import { finetunedModelKind } from './finetuned-model.js';
import { splitBackboneKind } from './split-backbone.js';

export const artifactKinds: ReadonlyMap<string, ArtifactKind> = new Map(
  [
    datasetManifestKind,
    backboneKind,
    transformKind,
    featureModelKind,
    featuresKind,
    headKind,
    trainedHeadKind,
    evaluationKind,
    exportedModelKind,
    predictionsKind,
    splitBackboneKind,
    activationsKind,
    finetunedModelKind,
    commandOutputKind,
  ].map((k) => [k.name, k]),
);
