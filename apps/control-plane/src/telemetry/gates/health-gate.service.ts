import { Injectable } from '@nestjs/common';
import { type GateEvaluationInput, type GateResult, HealthGateService, isShadowMetric } from './health-gate.contract.js';
import { evaluateShadowGates } from './shadow-gate.logic.js';
import { evaluateGates, type GateInputs } from './health-gate.logic.js';
import { candidateCohorts } from './telemetry-cohort.js';
import { TelemetryQueryRepository } from '../telemetry-query.repository.js';

/**
 * Health gates from the per-minute rollups. Candidate cohort: samples of the candidate version
 * labelled with the given waves of the rollout. Baseline cohort: samples of the baseline version
 * over the same window from every device outside those waves.
 *
 * PSI reference, in order of preference:
 *   1. the baseline version's reference distribution (uploaded with the version, else captured
 *      from its first production window): a canary is judged against what the fleet's current
 *      model was known to predict, so a drifting canary cannot hide behind its own early data;
 *   2. the baseline cohort's predictions over the same window (no reference captured yet);
 *   3. without a baseline version, the candidate's own reference (uploaded validation-set
 *      distribution, or its first production window).
 *
 * A candidate that ships several builds (variants) is also judged build by build: an int8 build
 * that regresses on NPUs would otherwise hide in the average of a fleet of healthy fp32 CPUs.
 * Each build's canaries are compared with the baseline devices that run the baseline's build of
 * the same name, or with the whole baseline when the baseline has no such build.
 */
@Injectable()
export class RollupHealthGateService extends HealthGateService {
  constructor(private readonly repository: TelemetryQueryRepository) {
    super();
  }

  async evaluate(input: GateEvaluationInput): Promise<GateResult[]> {
    if (input.gates.length === 0) return [];
    if (input.gates.some((g) => isShadowMetric(g.metric))) return this.evaluateShadow(input);
    const window = { from: new Date(input.now.getTime() - input.windowSeconds * 1000), to: new Date(input.now.getTime() + 60_000) };
    const cohorts = candidateCohorts(input.rolloutId, input.waves);
    const [candidate, baseline] = await Promise.all([
      this.repository.cohortTotals(input.model, input.candidateVersion, cohorts, window),
      input.baselineVersion === null ? Promise.resolve(null) : this.repository.totalsExcludingCohorts(input.model, input.baselineVersion, cohorts, window),
    ]);
    let psiReference: GateInputs['psiReference'] = null;
    if (input.gates.some((g) => g.metric === 'psi')) {
      const versions = input.baselineVersion === null ? [input.candidateVersion] : [input.baselineVersion, input.candidateVersion];
      const references = await this.repository.references(input.model, versions);
      const baselineReference = input.baselineVersion === null ? undefined : references.get(input.baselineVersion);
      if (baselineReference) psiReference = { distribution: baselineReference.distribution, source: `baseline ${baselineReference.source}` };
      else if (baseline && Object.keys(baseline.predictions).length > 0) psiReference = { distribution: baseline.predictions, source: 'baseline window' };
      else if (input.baselineVersion === null) {
        const own = references.get(input.candidateVersion);
        if (own) psiReference = { distribution: own.distribution, source: `candidate ${own.source}` };
      }
    }
    const results = evaluateGates({ gates: input.gates, minSamples: input.minSamples, candidate, baseline, psiReference });
    return [...results, ...(await this.perBuild(input, cohorts, window, baseline, psiReference))];
  }

  /**
   * Gates of a shadow wave, from the shadow telemetry of the wave's devices: the candidate beside
   * the active version on the same devices and inputs. The PSI reference is the active (baseline)
   * version's reference distribution, else the active answers of the same inferences.
   */
  private async evaluateShadow(input: GateEvaluationInput): Promise<GateResult[]> {
    const window = { from: new Date(input.now.getTime() - input.windowSeconds * 1000), to: new Date(input.now.getTime() + 60_000) };
    const shadowGates = input.gates.filter((g) => isShadowMetric(g.metric));
    const totals = await this.repository.shadowTotals(input.rolloutId, input.waves, window);
    let activeReference: { distribution: Record<string, number>; source: string } | null = null;
    if (input.baselineVersion !== null && shadowGates.some((g) => g.metric === 'shadow_psi')) {
      const ref = (await this.repository.references(input.model, [input.baselineVersion])).get(input.baselineVersion);
      if (ref) activeReference = { distribution: ref.distribution, source: `active version ${ref.source} reference` };
    }
    return evaluateShadowGates({ gates: shadowGates, minSamples: input.minSamples, totals, activeReference });
  }

  private async perBuild(
    input: GateEvaluationInput,
    cohorts: readonly string[],
    window: { from: Date; to: Date },
    baseline: GateInputs['baseline'],
    psiReference: GateInputs['psiReference'],
  ): Promise<GateResult[]> {
    const builds = [...(await this.repository.cohortTotalsByVariant(input.model, input.candidateVersion, cohorts, window))].filter(([v]) => v !== '');
    if (builds.length < 2) return []; // one build: the version-level results already are its results
    const baselineBuilds =
      input.baselineVersion === null ? new Map() : await this.repository.totalsExcludingCohortsByVariant(input.model, input.baselineVersion, cohorts, window);
    return builds.flatMap(([variant, candidate]) => {
      const own = baselineBuilds.get(variant);
      const against = own ?? baseline;
      return evaluateGates({ gates: input.gates, minSamples: input.minSamples, candidate, baseline: against, psiReference }).map((g) => ({
        ...g,
        variant,
        reason: `build ${variant} (baseline: ${own ? `its build ${variant}` : 'all builds'}): ${g.reason}`,
      }));
    });
  }
}
