import { UsageError } from './exit-codes.js';

/** Output helpers: `--json` prints machine-readable JSON, otherwise compact aligned tables. */
export interface Output {
  json: boolean;
  write(text: string): void;
  error(text: string): void;
}

export function processOutput(json: boolean): Output {
  return {
    json,
    write: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    error: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

export function printJson(out: Output, value: unknown): void {
  out.write(JSON.stringify(value, null, 2));
}

export type Cell = string | number | boolean | null | undefined | Date;

/** Left-aligned columns separated by two spaces; empty cells show as "-". */
export function formatTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((row) => row.map(cellText));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...text.map(line)].join('\n');
}

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  if (cell instanceof Date) return cell.toISOString();
  return String(cell);
}

/** Prints `key: value` lines for one object (nested values as compact JSON). */
export function formatDetails(record: Record<string, unknown>): string {
  const width = Math.max(0, ...Object.keys(record).map((k) => k.length));
  return Object.entries(record)
    .map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join('\n');
}

/** "region=eu" -> ["region", "eu"]; used by --tag. */
export function parseKeyValue(text: string, flag: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new UsageError(`${flag} expects key=value (got "${text}")`);
  return [text.slice(0, at), text.slice(at + 1)];
}
