/**
 * One model answer, as far as shadow comparison goes: a classifier's top-1 label or a regressor's
 * number. Anything else cannot be compared and is counted as run but not compared.
 */
export type Prediction = { label: string } | { value: number };

/** The top-1 label or the number in what a runtime's `infer` answered. */
export function predictionOf(output: unknown): Prediction | undefined {
  if (typeof output === 'string') return output.length > 0 ? { label: output.slice(0, 64) } : undefined;
  if (typeof output === 'number') return Number.isFinite(output) ? { value: output } : undefined;
  if (output === null || typeof output !== 'object') return undefined;
  const o = output as Record<string, unknown>;
  if (typeof o['label'] === 'string' && o['label'].length > 0) return { label: o['label'].slice(0, 64) };
  if (typeof o['value'] === 'number' && Number.isFinite(o['value'])) return { value: o['value'] };
  if (typeof o['score'] === 'number' && Number.isFinite(o['score'])) return { value: o['score'] };
  return undefined;
}
