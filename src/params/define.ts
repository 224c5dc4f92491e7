// One definition per parameter set: parameters are TypeBox schemas, which are
// at once the JSON Schema analysis validates with (filling defaults, once) and,
// through `Static`, the TypeScript type the code receives. A property with a
// `default` is required in that type (it is always there after analysis) but
// not in the schema (a pipeline may leave it out): `defineParams` drops it
// from the schema's `required`.
import { type ObjectOptions, type SchemaOptions, type Static, type TObject, type TProperties, type TUnsafe, Type } from '@sinclair/typebox';

export type { Static };

export function defineParams<T extends TProperties>(properties: T, options: ObjectOptions = {}): TObject<T> {
  const schema = Type.Object(properties, { additionalProperties: false, ...options });
  const plain = schema as { required?: string[] };
  const required = (plain.required ?? []).filter((key) => !('default' in (properties[key] as object)));
  if (required.length) plain.required = required;
  else delete plain.required;
  return schema;
}

/** `{enum: [...]}`, as the messages expect ("Expected one of ..., did you mean"), typed as the union of its values. */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, enum: [...values] });
}
