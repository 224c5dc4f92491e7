// An artifact kind: the named contract between the stage that produces an
// artifact and the stages that consume it. Each kind's module owns its file
// names, its value's type and its reader, so no step opens another step's
// files by a string literal; analysis checks every `inputs:` wiring against
// the kinds the steps declare before anything runs.

export interface ArtifactKind {
  /** The name steps declare (`produces: 'feature-model'`, `inputs: {model: {kind: 'feature-model'}}`). */
  readonly name: string;
  /** How messages speak of it: "a frozen feature model". */
  readonly label: string;
}

export function defineKind(name: string, label: string): ArtifactKind {
  return { name, label };
}
