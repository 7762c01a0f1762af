import type { GateResult } from '../../telemetry/gates/health-gate.contract.js';

export type GateVerdict = 'passed' | 'pending' | 'failed';

/**
 * What a wave's gate results mean for the wave. Any breach fails it, the version's or one build's
 * (variant). The version-level results must all pass. A build whose canaries have too few samples
 * holds the wave only for the first gate window after the wave started (`buildsGraceOver` false):
 * long enough for every build the wave's devices run to show up, without letting a build that
 * only a handful of devices run hold the wave for ever.
 */
export function gateVerdict(results: readonly GateResult[], gateCount: number, buildsGraceOver: boolean): GateVerdict {
  if (results.some((g) => g.passed === false)) return 'failed';
  const versionLevel = results.filter((g) => g.variant === undefined);
  if (versionLevel.length < gateCount || versionLevel.some((g) => g.passed !== true)) return 'pending';
  if (!buildsGraceOver && results.some((g) => g.variant !== undefined && g.passed === null)) return 'pending';
  return 'passed';
}
