import { createHash } from 'node:crypto';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { parseEnrollmentToken, rootMatchesPin, rootPinSchema } from '@fleetline/protocol';

/**
 * Where the TUF root a device pins at enrollment comes from (TUF §5.2: the trusted root is
 * distributed out of band). Everything the agent later installs is verified against it, so the
 * answer of whatever server the enrollment request reached must not choose it unchecked:
 *
 * - `file`: `--root-file`, a root.json the operator brought to the device; it is pinned as is.
 * - `pin`: the token's root pin (`<secret>.<pin>`) or `--root-sha256`; the answered root must hash to it.
 * - `tofu`: neither; the answered root is trusted on first use, with a warning.
 */
export type RootTrust =
  { kind: 'file'; path: string; root: string; version: number } | { kind: 'pin'; pin: string; source: 'token' | '--root-sha256' } | { kind: 'tofu' };

/** The enrollment must not go ahead: nothing is written to the data dir. */
export class RootTrustError extends Error {}

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Parses and self-verifies a root.json (its own root role's signature threshold). */
export function parseRootFile(text: string, path: string): Metadata<Root> {
  let root: Metadata<Root>;
  try {
    root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(text) as Parameters<typeof Metadata.fromJSON>[1]);
  } catch (err: unknown) {
    throw new RootTrustError(`${path} is not TUF root metadata: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    root.verifyDelegate('root', root);
  } catch (err: unknown) {
    throw new RootTrustError(`${path}: root metadata is not signed by its own root keys: ${err instanceof Error ? err.message : String(err)}`);
  }
  return root;
}

/**
 * Decides, before anything is sent, which root to trust and what the enrollment request carries:
 * the token's secret (the pin is not part of the credential) and the pin, so the control plane
 * answers with that root and refuses before creating anything when it has none.
 */
export function decideRootTrust(input: { token: string; rootSha256?: string; rootFile?: { path: string; text: string } }): {
  secret: string;
  requestPin?: string;
  trust: RootTrust;
} {
  const token = parseEnrollmentToken(input.token);
  const flag = input.rootSha256?.toLowerCase();
  if (flag !== undefined && !rootPinSchema.safeParse(flag).success)
    throw new RootTrustError(`--root-sha256 must be 32 to 64 hex digits of sha256(root.json), got "${input.rootSha256}"`);
  if (input.rootFile) {
    if (flag !== undefined) throw new RootTrustError('give --root-file or --root-sha256, not both');
    const root = parseRootFile(input.rootFile.text, input.rootFile.path);
    // The file decides; the token's pin is neither sent nor checked (the file is the stronger evidence).
    return { secret: token.secret, trust: { kind: 'file', path: input.rootFile.path, root: input.rootFile.text, version: root.signed.version } };
  }
  if (flag !== undefined && token.rootPin !== undefined && !flag.startsWith(token.rootPin) && !token.rootPin.startsWith(flag))
    throw new RootTrustError(`the token pins TUF root ${token.rootPin}, but --root-sha256 is ${flag}: they name different roots`);
  const pin = flag !== undefined && (token.rootPin === undefined || flag.length >= token.rootPin.length) ? flag : token.rootPin;
  if (pin === undefined) return { secret: token.secret, trust: { kind: 'tofu' } };
  return { secret: token.secret, requestPin: pin, trust: { kind: 'pin', pin, source: pin === flag ? '--root-sha256' : 'token' } };
}

/**
 * Checks the root the control plane answered with against the trust decided before, and returns
 * the root.json text to pin plus an optional note for the operator. Throws RootTrustError when the
 * answer does not fit, before anything is written. Pure apart from parsing.
 */
export function rootToPin(trust: RootTrust, answeredRoot: string, server: string): { root: string; note?: string } {
  switch (trust.kind) {
    case 'tofu':
      return {
        root: answeredRoot,
        note:
          `warning: trusting the TUF root ${server} sent on first use (no --root-file, no --root-sha256, and the token carries no root pin): ` +
          'whoever answered this request chose the keys this device will trust. Use a token from the control plane (it carries the root pin) or --root-file.',
      };
    case 'pin': {
      const got = sha256Hex(answeredRoot);
      if (!rootMatchesPin(got, trust.pin))
        throw new RootTrustError(
          `refusing to enroll: ${server} answered with a TUF root whose sha256 is ${got}, but the ${trust.source === 'token' ? "token's root pin" : '--root-sha256'} is ${trust.pin}. ` +
            'The server is not the control plane the token was made for, or something on the way replaced its answer. Nothing was written.',
        );
      return { root: answeredRoot };
    }
    case 'file': {
      if (sha256Hex(answeredRoot) === sha256Hex(trust.root)) return { root: trust.root };
      let answered: Metadata<Root>;
      try {
        answered = Metadata.fromJSON(MetadataKind.Root, JSON.parse(answeredRoot) as Parameters<typeof Metadata.fromJSON>[1]);
      } catch (err: unknown) {
        throw new RootTrustError(`refusing to enroll: ${server} answered with a TUF root that does not parse: ${String(err)}. Nothing was written.`);
      }
      const fileRoot = parseRootFile(trust.root, trust.path);
      const version = answered.signed.version;
      if (version < trust.version)
        throw new RootTrustError(
          `refusing to enroll: ${server} serves TUF root version ${version}, older than version ${trust.version} in ${trust.path}. Nothing was written.`,
        );
      if (version === trust.version && !answered.signed.equals(fileRoot.signed))
        throw new RootTrustError(
          `refusing to enroll: ${server} serves a TUF root version ${version} that differs from version ${version} in ${trust.path}. Nothing was written.`,
        );
      return {
        root: trust.root,
        ...(version > trust.version
          ? {
              note: `pinned root version ${trust.version} from ${trust.path}; the device verifies the chain to the server's version ${version} on its first update`,
            }
          : {}),
      };
    }
  }
}
