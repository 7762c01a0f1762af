import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Metadata, Root } from '@tufjs/models';
import type { ApiClient } from '../api-client.js';
import { ApiError } from '../api-client.js';
import { UsageError } from '../exit-codes.js';
import { followRootChain, parseRoot, type SigningKey, signingKeyFromPem } from './offline-signing.js';

/**
 * The operator's key directory (`--key-dir`): `root.key.pem` and `targets.key.pem` (PKCS#8
 * ed25519, files 0600, directory 0700, the same format the control plane uses) and `root.json`,
 * the newest root this operator has verified. Keys a rotation replaced move to `retired/`.
 */
export class KeyDir {
  constructor(readonly dir: string) {}

  static keyFile(role: 'root' | 'targets'): string {
    return `${role}.key.pem`;
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  async ensure(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
  }

  async readKey(role: 'root' | 'targets'): Promise<SigningKey | undefined> {
    const pem = await this.readText(KeyDir.keyFile(role));
    return pem === undefined ? undefined : signingKeyFromPem(pem);
  }

  async requireKey(role: 'root' | 'targets'): Promise<SigningKey> {
    const key = await this.readKey(role);
    if (!key) throw new UsageError(`no ${KeyDir.keyFile(role)} in ${this.dir} (run fleetctl keys init there first)`);
    return key;
  }

  /** Writes a key only where none is: an operator's key is never overwritten. */
  async writeNewKey(name: string, pem: string): Promise<void> {
    await writeFile(this.path(name), pem, { mode: 0o600, flag: 'wx' });
  }

  /** Moves `{role}.key.pem` to retired/ and `{role}.key.pem.new` in its place (after a rotation was published). */
  async replaceKey(role: 'root' | 'targets', retiredKeyId: string): Promise<void> {
    await mkdir(this.path('retired'), { recursive: true, mode: 0o700 });
    await rename(this.path(KeyDir.keyFile(role)), join(this.dir, 'retired', `${role}.${retiredKeyId.slice(0, 16)}.key.pem`));
    await rename(this.path(`${KeyDir.keyFile(role)}.new`), this.path(KeyDir.keyFile(role)));
  }

  async readRoot(): Promise<Metadata<Root> | undefined> {
    const text = await this.readText('root.json');
    return text === undefined ? undefined : parseRoot(text);
  }

  async writeRoot(root: Metadata<Root>): Promise<void> {
    const tmp = this.path('root.json.tmp');
    await writeFile(tmp, `${JSON.stringify(root.toJSON(), null, 2)}\n`, { mode: 0o644 });
    await rename(tmp, this.path('root.json'));
  }

  private async readText(name: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UsageError(`cannot read ${this.path(name)}: ${(err as Error).message}`);
    }
  }
}

/**
 * The server's newest root, verified from the one in the key directory along the chain of root
 * versions; root.json is updated to it.
 */
export async function refreshTrustedRoot(client: ApiClient, keyDir: KeyDir): Promise<Metadata<Root>> {
  const trusted = await keyDir.readRoot();
  if (!trusted) throw new UsageError(`no root.json in ${keyDir.dir} (run fleetctl keys init there first)`);
  const newer: Metadata<Root>[] = [];
  for (let version = trusted.signed.version + 1; ; version++) {
    try {
      newer.push(parseRoot(await client.get<unknown>(`/api/v1/tuf/admin/metadata/${version}.root.json`)));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) break;
      throw err;
    }
  }
  const latest = followRootChain(trusted, newer);
  if (newer.length > 0) await keyDir.writeRoot(latest);
  return latest;
}
