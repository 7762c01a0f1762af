import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Key, Signature } from '@tufjs/models';

export const TOP_LEVEL_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type TopLevelRole = (typeof TOP_LEVEL_ROLES)[number];

/** A role's signing key: its TUF public key and a signer for Metadata.sign(). */
export interface RoleKey {
  key: Key;
  sign: (data: Buffer) => Signature;
}

/** TUF key object of an ed25519 public key (hex keyval, as the TUF spec §4.2 "ed25519" key type). */
export function tufPublicKey(publicKey: KeyObject): Key {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('TUF keys must be ed25519');
  const publicHex = Buffer.from(jwk.x, 'base64url').toString('hex');
  return new Key({ keyID: keyIdOf(publicHex), keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } });
}

/**
 * KEYID = sha256 of the canonical JSON of the public key (TUF spec §4.2). Canonical JSON sorts
 * object keys and has no whitespace; with only hex strings inside, JSON.stringify of the
 * key-sorted object is exactly that.
 */
export function keyIdOf(publicHex: string): string {
  const canonical = JSON.stringify({ keytype: 'ed25519', keyval: { public: publicHex }, scheme: 'ed25519' });
  return createHash('sha256').update(canonical).digest('hex');
}

export function roleKeyFromPrivate(privateKey: KeyObject): RoleKey {
  const key = tufPublicKey(createPublicKey(privateKey));
  return {
    key,
    // ed25519 signs the message itself (no pre-hash), hence the null algorithm.
    sign: (data: Buffer) => new Signature({ keyID: key.keyID, sig: sign(null, data, privateKey).toString('hex') }),
  };
}

/**
 * Private keys of the top-level roles, one PKCS#8 PEM file per role under `{dataDir}/tuf-keys/`
 * (directory 0700, files 0600). A role whose file is absent is "offline": its metadata is signed
 * elsewhere and uploaded (docs/tuf.md).
 */
export class TufKeyDirectory {
  constructor(readonly dir: string) {}

  static fileName(role: TopLevelRole): string {
    return `${role}.key.pem`;
  }

  /**
   * A key generated for a rotation (`fleetctl keys rotate`) that no root trusts yet. It becomes
   * `{role}.key.pem` once a root listing it is published, so the private key never leaves the server.
   */
  static nextFileName(role: TopLevelRole): string {
    return `${role}.next.key.pem`;
  }

  /**
   * The key hash bins are signed with (delegated by top-level targets, not by root; docs/tuf.md
   * "Hash bins"). Online whenever bins are: it is used on every upload.
   */
  static readonly BINS_KEY_FILE = 'bins.key.pem';

  /** A replacement bins key put here by the operator; the next start moves the bins to it (docs/tuf.md). */
  static readonly BINS_NEXT_KEY_FILE = 'bins.next.key.pem';

  async loadBinsKey(): Promise<RoleKey | undefined> {
    return this.read(TufKeyDirectory.BINS_KEY_FILE);
  }

  async loadStagedBinsKey(): Promise<RoleKey | undefined> {
    return this.read(TufKeyDirectory.BINS_NEXT_KEY_FILE);
  }

  async promoteStagedBinsKey(): Promise<void> {
    await rename(join(this.dir, TufKeyDirectory.BINS_NEXT_KEY_FILE), join(this.dir, TufKeyDirectory.BINS_KEY_FILE));
  }

  async generateBinsKeyIfMissing(): Promise<RoleKey> {
    await this.ensureDir();
    const existing = await this.read(TufKeyDirectory.BINS_KEY_FILE);
    if (existing) return existing;
    try {
      return await this.generate(TufKeyDirectory.BINS_KEY_FILE);
    } catch (err) {
      // Another replica generated it at the same moment: use that one.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await this.read(TufKeyDirectory.BINS_KEY_FILE))!;
      throw err;
    }
  }

  async load(): Promise<Map<TopLevelRole, RoleKey>> {
    const keys = new Map<TopLevelRole, RoleKey>();
    for (const role of TOP_LEVEL_ROLES) {
      const key = await this.read(TufKeyDirectory.fileName(role));
      if (key) keys.set(role, key);
    }
    return keys;
  }

  /** Staged rotation keys by role. */
  async loadNext(): Promise<Map<TopLevelRole, RoleKey>> {
    const keys = new Map<TopLevelRole, RoleKey>();
    for (const role of TOP_LEVEL_ROLES) {
      const key = await this.read(TufKeyDirectory.nextFileName(role));
      if (key) keys.set(role, key);
    }
    return keys;
  }

  /** Generates a fresh ed25519 key for each of `roles` that has no file yet. */
  async generateMissing(roles: readonly TopLevelRole[] = TOP_LEVEL_ROLES): Promise<Map<TopLevelRole, RoleKey>> {
    await this.ensureDir();
    const existing = await this.load();
    for (const role of roles) {
      if (existing.has(role)) continue;
      existing.set(role, await this.generate(TufKeyDirectory.fileName(role)));
    }
    return existing;
  }

  /** The staged rotation key of `role`, generated when there is none. */
  async stageNext(role: TopLevelRole): Promise<RoleKey> {
    await this.ensureDir();
    const staged = await this.read(TufKeyDirectory.nextFileName(role));
    if (staged) return staged;
    try {
      return await this.generate(TufKeyDirectory.nextFileName(role));
    } catch (err) {
      // Another replica staged one at the same moment: use it.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await this.read(TufKeyDirectory.nextFileName(role)))!;
      throw err;
    }
  }

  /** Makes the staged key of `role` its current key (after a root trusting it was published). */
  async promoteNext(role: TopLevelRole): Promise<void> {
    await rename(join(this.dir, TufKeyDirectory.nextFileName(role)), join(this.dir, TufKeyDirectory.fileName(role)));
  }

  private async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
  }

  private async generate(fileName: string): Promise<RoleKey> {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    // 'wx': never overwrite a key another process wrote meanwhile.
    await writeFile(join(this.dir, fileName), pem, { mode: 0o600, flag: 'wx' });
    return roleKeyFromPrivate(privateKey);
  }

  private async read(fileName: string): Promise<RoleKey | undefined> {
    let pem: string;
    try {
      pem = await readFile(join(this.dir, fileName), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return roleKeyFromPrivate(createPrivateKey(pem));
  }
}
