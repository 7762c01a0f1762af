import { type ArtifactRef, selectVariant } from '@fleetline/protocol';
import { capabilitiesOf, type CompatibilityProjection } from '../../devices/device-capabilities.js';

export { COMPATIBILITY_KEY_SQL, type CompatibilityProjection } from '../../devices/device-capabilities.js';

/**
 * Why no build of a version fits a device (`code: reason`, the same form as an agent's own
 * refusal in the devices list), or undefined when one does. The rule is the protocol's
 * selectVariant, the one the agent applies: the best build that fits, in the version's order.
 */
export function incompatibilityReason(artifacts: readonly ArtifactRef[], projection: CompatibilityProjection): string | undefined {
  const selection = selectVariant(artifacts, capabilitiesOf(projection));
  return selection.ok ? undefined : `${selection.code}: ${selection.reason}`;
}
