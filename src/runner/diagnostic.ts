// A Diagnostic is a problem in a file the user wrote, located precisely enough
// to print the offending source line with an underline.
import path from 'node:path';

export interface SourceFile {
  path: string;
  text: string;
}

export interface Diagnostic {
  file: SourceFile;
  /** Character offsets into file.text. */
  start: number;
  end: number;
  message: string;
}

export function lineAndColumn(text: string, offset: number): { line: number; col: number; lineStart: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1, lineStart };
}

/**
 * `❌ pipelines/x.yaml:7:5 message`, then the source line and a `~~~` underline.
 * Paths are shown relative to `cwd` so the text is stable in tests and short in terminals.
 */
export function formatDiagnostic(d: Diagnostic, cwd = process.cwd()): string {
  const { text } = d.file;
  const start = Math.max(0, Math.min(d.start, text.length));
  const { line, col, lineStart } = lineAndColumn(text, start);
  let lineEnd = text.indexOf('\n', lineStart);
  if (lineEnd === -1) lineEnd = text.length;
  const source = text.slice(lineStart, lineEnd).replace(/\r$/, '');
  const underlineEnd = Math.min(Math.max(d.end, start + 1), lineEnd);
  const width = Math.max(1, underlineEnd - start);
  const shown = path.relative(cwd, d.file.path) || d.file.path;
  const gutter = '    ';
  return [
    `❌ ${shown}:${line}:${col} ${d.message}`,
    `${gutter}${source}`,
    `${gutter}${' '.repeat(col - 1)}${'~'.repeat(width)}`,
  ].join('\n');
}

export function formatDiagnostics(ds: readonly Diagnostic[], cwd = process.cwd()): string {
  const sorted = [...ds].sort((a, b) => a.file.path.localeCompare(b.file.path) || a.start - b.start);
  const count = sorted.length === 1 ? '1 problem' : `${sorted.length} problems`;
  return `${sorted.map((d) => formatDiagnostic(d, cwd)).join('\n\n')}\n\n${count} found.`;
}

/** Edit distance where swapping two adjacent letters counts as one edit ("wiht" → "with"). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate when it is close enough to be a likely typo. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= limit ? best : undefined;
}

export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c ? ` Did you mean "${c}"?` : '';
}
