// Labels taken from file names (the Kaggle layout), declared as data:
// either "the first class name the file name contains", or a regular
// expression whose capture group is the class name.
import { ExpectedFailure } from '../failure.js';

export interface ContainsLabelRule {
  type: 'contains';
  /** Class names, in class-index order; the first one found in the file name wins. */
  classes: string[];
  /** Class given to a file name containing none of them; without it such files are skipped. */
  otherwise?: string;
  /** Match regardless of case; default false (the classic rule is `'cat' in name`). */
  ignoreCase?: boolean;
}

export interface RegexLabelRule {
  type: 'regex';
  /** JavaScript regular expression tested against the file name (not the folder). */
  pattern: string;
  /** RegExp flags, e.g. "i". */
  flags?: string;
  /** Capture group holding the class name: a number or a group name; default the group named `label`, else 1. */
  group?: number | string;
  /** Allowed class names in class-index order; default: every name captured, sorted. */
  classes?: string[];
}

export type LabelRule = ContainsLabelRule | RegexLabelRule;

/** Kaggle "Dogs vs. Cats": a name containing "cat" is class 0 (cat), any other is class 1 (dog). */
export const CATS_VS_DOGS_RULE: ContainsLabelRule = { type: 'contains', classes: ['cat', 'dog'], otherwise: 'dog' };

export class LabelRuleError extends ExpectedFailure {
  override name = 'LabelRuleError';
  readonly reason = 'parameters';
}

export interface CompiledLabelRule {
  /** Declared classes in index order, or null when they are discovered from the names. */
  declaredClasses: string[] | null;
  /** The class name for a file name, or a reason why there is none. */
  labelOf(fileName: string): { label: string } | { reason: string };
}

export function compileLabelRule(rule: LabelRule): CompiledLabelRule {
  if (rule.type === 'contains') return compileContains(rule);
  if (rule.type === 'regex') return compileRegex(rule);
  throw new LabelRuleError(
    `labelRule.type must be 'contains' or 'regex', got ${JSON.stringify((rule as { type?: unknown }).type)}`,
  );
}

export function describeLabelRule(rule: LabelRule): string {
  if (rule.type === 'contains') {
    const otherwise = rule.otherwise === undefined ? 'skip the file' : `class '${rule.otherwise}'`;
    return `first of ${JSON.stringify(rule.classes)} found in the file name${rule.ignoreCase ? ' (any case)' : ''}, otherwise ${otherwise}`;
  }
  return `regex /${rule.pattern}/${rule.flags ?? ''} on the file name`;
}

function checkClassList(classes: unknown, field: string): string[] {
  if (!Array.isArray(classes) || classes.length === 0 || classes.some((c) => typeof c !== 'string' || c === '')) {
    throw new LabelRuleError(`${field} must be a non-empty list of non-empty class names`);
  }
  const seen = new Set<string>();
  for (const name of classes as string[]) {
    if (seen.has(name)) throw new LabelRuleError(`${field} lists '${name}' twice`);
    seen.add(name);
  }
  return classes as string[];
}

function compileContains(rule: ContainsLabelRule): CompiledLabelRule {
  const classes = checkClassList(rule.classes, 'labelRule.classes');
  if (rule.otherwise !== undefined && !classes.includes(rule.otherwise)) {
    throw new LabelRuleError(
      `labelRule.otherwise is '${rule.otherwise}', which is not one of labelRule.classes ${JSON.stringify(classes)}`,
    );
  }
  const fold = (s: string) => (rule.ignoreCase ? s.toLowerCase() : s);
  const needles = classes.map(fold);
  return {
    declaredClasses: classes,
    labelOf(fileName) {
      const name = fold(fileName);
      const index = needles.findIndex((needle) => name.includes(needle));
      if (index >= 0) return { label: classes[index]! };
      if (rule.otherwise !== undefined) return { label: rule.otherwise };
      return { reason: `file name contains none of the class names ${JSON.stringify(classes)}` };
    },
  };
}

function compileRegex(rule: RegexLabelRule): CompiledLabelRule {
  if (typeof rule.pattern !== 'string' || rule.pattern === '') {
    throw new LabelRuleError('labelRule.pattern must be a non-empty regular expression');
  }
  let regex: RegExp;
  try {
    // Global/sticky flags would make test() stateful across files.
    regex = new RegExp(rule.pattern, (rule.flags ?? '').replace(/[gy]/g, ''));
  } catch (error) {
    throw new LabelRuleError(`labelRule.pattern is not a valid regular expression: ${(error as Error).message}`);
  }
  const groupCount = new RegExp(`${rule.pattern}|`).exec('')!.length - 1;
  const hasLabelGroup = /\(\?<label>/.test(rule.pattern);
  const group = rule.group ?? (hasLabelGroup ? 'label' : 1);
  if (typeof group === 'number' && (!Number.isInteger(group) || group < 0 || group > groupCount)) {
    throw new LabelRuleError(
      `labelRule.group is ${group} but the pattern has ${groupCount} capture group(s): add a group such as (cat|dog)`,
    );
  }
  if (typeof group === 'string' && !rule.pattern.includes(`(?<${group}>`)) {
    throw new LabelRuleError(`labelRule.group is '${group}' but the pattern has no group named (?<${group}>...)`);
  }
  const classes = rule.classes === undefined ? null : checkClassList(rule.classes, 'labelRule.classes');
  return {
    declaredClasses: classes,
    labelOf(fileName) {
      const match = regex.exec(fileName);
      if (!match) return { reason: `file name does not match the label pattern /${rule.pattern}/` };
      const label = typeof group === 'number' ? match[group] : match.groups?.[group];
      if (label === undefined || label === '') return { reason: 'the label group captured nothing in this file name' };
      if (classes && !classes.includes(label)) {
        return { reason: `label '${label}' from the file name is not one of ${JSON.stringify(classes)}` };
      }
      return { label };
    },
  };
}
