import { MODEL_NAME_PATTERN } from './topics.js';

/**
 * TUF target naming. The control plane names every artifact it signs `{model}/{version}/{fileName}`
 * (docs/tuf.md), and the device agent checks the name of every target a desired state points it at
 * against the model and version that desired state assigns. The signature chain alone proves the
 * bytes were uploaded to this fleet, not that they belong to this assignment: without the check,
 * whoever can write desired state could point `detector@2.0.0` at the signed file of another model.
 */

/** Artifact file names: they end up in a URL path and a directory on the device. */
export const ARTIFACT_FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The TUF target path of one artifact of a model version. */
export function modelTargetPath(model: string, version: string, fileName: string): string {
  return `${model}/${version}/${fileName}`;
}

/**
 * True when `targetPath` names a file of exactly `model`@`version`: the two leading segments are
 * the model and the version, and the rest is one valid file name (no further `/`, no `..`). Pure.
 */
export function isTargetOfModelVersion(targetPath: string, model: string, version: string): boolean {
  if (!MODEL_NAME_PATTERN.test(model) || version.length === 0 || version.includes('/')) return false;
  const prefix = `${model}/${version}/`;
  if (!targetPath.startsWith(prefix)) return false;
  return ARTIFACT_FILE_NAME_PATTERN.test(targetPath.slice(prefix.length));
}
