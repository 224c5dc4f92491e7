// The contract between stages, checked at analysis: every input a stage wires
// must come from a stage producing an artifact kind the input accepts, and
// every kind a step declares must be one of src/artifacts/.
import { type Diagnostic, didYouMean } from './diagnostic.js';
import { type Locations, type Pointer, pointer } from './load.js';
import type { KindRegistry } from './registry.js';
import type { InputPort, Step } from './step.js';

export interface WiredStage {
  name: string;
  uses: string;
  step: Step;
  /** Input name → the stage that produces it. */
  inputs: { [input: string]: string };
}

const accepted = (port: InputPort): readonly string[] => (port.kind === undefined ? [] : typeof port.kind === 'string' ? [port.kind] : port.kind);

const labelOf = (kinds: KindRegistry, kind: string) => `${kinds.get(kind)?.label ?? 'an artifact'} (kind "${kind}")`;

function ports(step: Step): [string, InputPort][] {
  const declared = step.inputs ?? {};
  return 'any' in declared && declared.any === true ? [] : Object.entries(declared as Record<string, InputPort>);
}

/** Kinds a step declares that are not artifact kinds, reported at its `uses:`. */
export function checkDeclaredKinds(step: Step, uses: string, artifactKinds: KindRegistry, at: Pointer, locations: Locations, diagnostics: Diagnostic[]): boolean {
  const who = uses.startsWith('.') || uses.startsWith('/') ? `Step module "${uses}"` : `Step "${uses}"`;
  const unknown = (kind: unknown, what: string) => {
    if (typeof kind === 'string' && artifactKinds.has(kind)) return false;
    const hint = typeof kind === 'string' ? didYouMean(kind, artifactKinds.keys()) : '';
    diagnostics.push(
      locations.diagnostic(at, `${who} ${what} unknown artifact kind ${JSON.stringify(kind)}.${hint || ` Known kinds: ${[...artifactKinds.keys()].join(', ')}.`} See docs/steps.md.`),
    );
    return true;
  };
  let bad = step.produces !== undefined && unknown(step.produces, 'produces');
  for (const [name, port] of ports(step)) {
    for (const kind of accepted(port)) bad = unknown(kind, `declares input "${name}" of`) || bad;
  }
  return !bad;
}

/**
 * Each wired input against the kind its producer declares, reported at the
 * wired stage name. `builtins` name the steps that could produce a missing kind.
 */
export function checkWiring(
  stages: readonly WiredStage[],
  known: KindRegistry,
  locations: Locations,
  diagnostics: Diagnostic[],
  builtins: readonly Step[],
): void {
  const byName = new Map(stages.map((s) => [s.name, s]));
  for (const stage of stages) {
    for (const [input, port] of ports(stage.step)) {
      const kinds = accepted(port);
      const producerName = stage.inputs[input];
      const producer = producerName === undefined ? undefined : byName.get(producerName);
      if (!kinds.length || !producer) continue;
      const produced = producer.step.produces;
      if (produced !== undefined && kinds.includes(produced)) continue;
      const at = `${pointer('stages', stage.name, 'inputs', input)}`;
      const wants = `Input "${input}" of stage "${stage.name}" accepts ${kinds.map((k) => labelOf(known, k)).join(' or ')}`;
      if (produced === undefined) {
        diagnostics.push(
          locations.diagnostic(
            at,
            `${wants}, but stage "${producer.name}" (${producer.uses}) declares no artifact kind. If it writes one, declare \`produces: '${kinds[0]}'\` in its step (see docs/steps.md).`,
          ),
        );
        continue;
      }
      const candidates = stages.filter((s) => s.name !== stage.name && s.step.produces !== undefined && kinds.includes(s.step.produces)).map((s) => s.name);
      let hint: string;
      if (candidates.length === 1) hint = ` Did you mean "${candidates[0]}"?`;
      else if (candidates.length) hint = didYouMean(producer.name, candidates) || ` Stages that produce one: ${candidates.join(', ')}.`;
      else {
        const steps = builtins.filter((s) => s.produces !== undefined && kinds.includes(s.produces)).map((s) => s.type);
        hint = ` No stage of this pipeline produces one${steps.length ? `: add a ${steps.join(' or ')} stage` : ''}.`;
      }
      diagnostics.push(locations.diagnostic(at, `${wants}, but stage "${producer.name}" (${producer.uses}) produces ${labelOf(known, produced)}.${hint}`));
    }
  }
}
