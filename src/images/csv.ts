// A small RFC 4180 CSV reader for label manifests: comma-separated, fields
// optionally double-quoted (quotes doubled inside, commas and line breaks
// allowed), LF or CRLF line ends, an optional UTF-8 byte-order mark.

export class CsvSyntaxError extends Error {
  override name = 'CsvSyntaxError';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

/** A parsed row and the line it starts on (1-based), for messages. */
export interface CsvRow {
  line: number;
  fields: string[];
}

export function parseCsv(text: string): CsvRow[] {
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let inQuotes = false;
  let fieldWasQuoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  const endField = () => {
    fields.push(field);
    field = '';
    fieldWasQuoted = false;
  };
  const endRow = () => {
    endField();
    // A blank line is no row.
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ line: rowLine, fields });
    fields = [];
  };

  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          inQuotes = false;
        }
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"') {
      if (field !== '' || fieldWasQuoted) {
        throw new CsvSyntaxError('a quote inside an unquoted field: quote the whole field and double inner quotes', line);
      }
      inQuotes = true;
      fieldWasQuoted = true;
    } else if (ch === ',') {
      endField();
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else {
      if (fieldWasQuoted) {
        throw new CsvSyntaxError('text after a closing quote: quote the whole field and double inner quotes', line);
      }
      field += ch;
    }
  }
  if (inQuotes) throw new CsvSyntaxError('a quoted field is not closed before the end of the file', rowLine);
  if (field !== '' || fields.length > 0 || fieldWasQuoted) endRow();
  return rows;
}
