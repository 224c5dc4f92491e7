// The published pipeline schema (schemas/pipeline.schema.json): the file's
// structure, plus, so that editors complete and check `with:`, one rule per
// built-in step type. `npm run schema` regenerates the step rules; a test
// checks the committed file is current.
import type { JsonSchema, Step } from './step.js';

type StageSchema = JsonSchema & { allOf?: unknown[] };

/** The schema with each built-in step's parameters attached to its `uses:` value. */
export function withStepRules(schema: JsonSchema, steps: readonly Step[]): JsonSchema {
  const copy = structuredClone(schema) as { definitions: { stage: StageSchema } };
  copy.definitions.stage.allOf = steps.map((step) => ({
    if: { properties: { uses: { const: step.type } }, required: ['uses'] },
    // As plain JSON: a TypeBox schema also carries symbol keys, which the file cannot hold.
    then: { properties: { with: { description: step.description, ...allowReferences(JSON.parse(JSON.stringify(step.paramsSchema)) as JsonSchema) } } },
  }));
  return copy as unknown as JsonSchema;
}

/** In the file, any parameter may still be a `${...}` reference: accept one wherever a value goes. */
function allowReferences(schema: JsonSchema): JsonSchema {
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (!properties) return schema;
  const reference = { type: 'string', pattern: '\\$\\{[^}]+\\}' };
  return {
    ...schema,
    properties: Object.fromEntries(
      Object.entries(properties).map(([k, v]) => [k, { anyOf: [allowReferences(v), reference], ...(v.description ? { description: v.description } : {}) }]),
    ),
  };
}

/** The structure alone: step parameters are checked separately, with better messages. */
export function structureOnly(schema: JsonSchema): JsonSchema {
  const copy = structuredClone(schema) as { definitions: { stage: StageSchema } };
  delete copy.definitions.stage.allOf;
  return copy as unknown as JsonSchema;
}
