// Classification metrics from true and predicted labels.

export interface ClassMetrics {
  /** Class index. */
  class: number;
  /** Class name (the index as text when no names were given). */
  name: string;
  /** Of the samples predicted as this class, the fraction that are; 0 when none is predicted. */
  precision: number;
  /** Of the samples of this class, the fraction predicted as it; 0 when there are none. */
  recall: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
  /** Number of samples of this class. */
  support: number;
}

export interface ClassificationMetrics {
  accuracy: number;
  perClass: ClassMetrics[];
  /** confusion[true][predicted] = count. */
  confusion: number[][];
  /** Unweighted mean of the per-class F1 over all classes. */
  macroF1: number;
}

export function classNames(classes: number | readonly string[]): string[] {
  return typeof classes === 'number' ? Array.from({ length: classes }, (_, c) => String(c)) : [...classes];
}

export function classificationMetrics(
  labels: ArrayLike<number>,
  predicted: ArrayLike<number>,
  classes: number | readonly string[],
): ClassificationMetrics {
  const names = classNames(classes);
  const C = names.length;
  if (labels.length !== predicted.length) throw new RangeError(`${labels.length} labels but ${predicted.length} predictions`);
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    const p = predicted[i]!;
    if (!(y >= 0 && y < C && Number.isInteger(y))) throw new RangeError(`label ${i} is ${y}, outside the classes 0…${C - 1}`);
    if (!(p >= 0 && p < C && Number.isInteger(p))) throw new RangeError(`prediction ${i} is ${p}, outside the classes 0…${C - 1}`);
    confusion[y]![p]!++;
    if (y === p) correct++;
  }
  const perClass = names.map((name, c) => {
    const truePositives = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predictedAs = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predictedAs === 0 ? 0 : truePositives / predictedAs;
    const recall = support === 0 ? 0 : truePositives / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { class: c, name, precision, recall, f1, support };
  });
  return {
    accuracy: labels.length === 0 ? 0 : correct / labels.length,
    perClass,
    confusion,
    macroF1: perClass.reduce((a, m) => a + m.f1, 0) / C,
  };
}
