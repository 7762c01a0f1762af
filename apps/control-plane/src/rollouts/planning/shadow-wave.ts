import type { ShadowDirective } from '@fleetline/protocol';
import type { RolloutAction, WaveSpec } from '../rollout.types.js';

/** What the desired state of a wave's device says: the rollout's action, or shadow with its directive. */
export type WaveDesiredAction = { action: RolloutAction } | { action: 'shadow'; shadow: ShadowDirective };

export function desiredActionOfWave(rolloutAction: RolloutAction, wave: Pick<WaveSpec, 'action' | 'shadow'> | undefined): WaveDesiredAction {
  if (wave?.action === 'shadow' && wave.shadow) return { action: 'shadow', shadow: wave.shadow };
  return { action: rolloutAction };
}

/**
 * The action whose success states a wave is judged by: a shadow wave's device is done once the
 * candidate is staged (`downloaded`), as for a download-only rollout; its shadow gates then say
 * whether the rollout goes on.
 */
export function waveSuccessAction(rolloutAction: RolloutAction, wave: Pick<WaveSpec, 'action'> | undefined): RolloutAction {
  return wave?.action === 'shadow' ? 'download-only' : rolloutAction;
}
