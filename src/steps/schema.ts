// Library schemas carry their own $id; inside a step's parameters they are
// anonymous sub-schemas, so ajv must not register them globally.
export function withoutIds<T extends object>(schema: T): Record<string, unknown> {
  const { $id: _id, $schema: _schema, ...rest } = schema as Record<string, unknown>;
  return rest;
}
