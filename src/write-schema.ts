// `npm run schema`: rewrites schemas/pipeline.schema.json with the current
// built-in steps' parameter schemas.
import { writeFile } from 'node:fs/promises';
import { pipelineSchema, schemaFile } from './runner/analyze.js';
import { withStepRules } from './runner/pipeline-schema.js';
import { builtinSteps } from './steps/index.js';

await writeFile(schemaFile, `${JSON.stringify(withStepRules(pipelineSchema(), builtinSteps), null, 2)}\n`);
console.log(`wrote ${schemaFile}`);
