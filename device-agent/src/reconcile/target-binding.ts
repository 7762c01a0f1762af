import { type DesiredModel, isTargetOfModelVersion } from '@fleetline/protocol';

export type TargetBindingResult = { ok: true } | { ok: false; code: 'target-mismatch'; message: string };

/**
 * Every artifact of an assignment must be a signed target of the assigned model and version
 * (`{model}/{version}/{fileName}`, the protocol's rule). TUF proves the bytes were signed for this
 * fleet; this proves they were signed as this model version, so a desired state cannot swap in
 * another model's (or an older, vulnerable version's) signed file. Pure.
 */
export function checkTargetBinding(desired: Pick<DesiredModel, 'model' | 'version' | 'artifacts'>): TargetBindingResult {
  for (const a of desired.artifacts) {
    if (!isTargetOfModelVersion(a.targetPath, desired.model, desired.version))
      return {
        ok: false,
        code: 'target-mismatch',
        message: `artifact ${a.targetPath} is not a target of ${desired.model}@${desired.version} (expected ${desired.model}/${desired.version}/<file>)`,
      };
  }
  return { ok: true };
}
