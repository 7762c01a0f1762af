import { createHash } from 'node:crypto';
import type { Key, Metadata, Root, Targets } from '@tufjs/models';
import type { Command } from 'commander';
import { ApiError } from '../api-client.js';
import { cliContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { printJson } from '../output.js';
import { KeyDir, refreshTrustedRoot } from '../tuf/key-dir.js';
import {
  adoptRoot,
  firstRoot,
  firstTargets,
  generateSigningKey,
  keyFromJson,
  parseRoot,
  privateKeyPem,
  resignTargets,
  type Role,
  ROLES,
  rotateRoot,
  type SigningKey,
  verifiedTargets,
} from '../tuf/offline-signing.js';

interface OnlineKeys {
  snapshot: { keyId: string; key: unknown };
  timestamp: { keyId: string; key: unknown };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function rootPin(root: Metadata<Root>): string {
  return createHash('sha256').update(JSON.stringify(root.toJSON())).digest('hex').slice(0, 32);
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('TUF root and targets keys kept on this machine (TUF_KEYS=offline, docs/tuf.md)')
    .addHelpText(
      'after',
      `
Run these on the operator's machine, never on the control plane. The key directory holds
root.key.pem and targets.key.pem (keep them offline: a hardware-encrypted disk, a safe) and
root.json, the newest root verified here.

Examples:
  fleetctl keys init --key-dir ./fleet-keys
  fleetctl keys rotate --key-dir ./fleet-keys --role targets --role timestamp`,
    );

  keys
    .command('init')
    .description(
      'create root and targets keys here and publish root v1 (trusting the server snapshot/timestamp keys); ' +
        'if the server already has a root made with the root key in --key-dir, adopt it',
    )
    .requiredOption('--key-dir <dir>', 'directory for root.key.pem, targets.key.pem and root.json')
    .action(async (options: { keyDir: string }, command: Command) => {
      const { client, out } = await cliContext(command);
      const keyDir = new KeyDir(options.keyDir);
      if (await keyDir.readRoot()) throw new UsageError(`${keyDir.path('root.json')} exists: this key directory is initialised already`);
      await keyDir.ensure();
      let serverRoot: Metadata<Root> | undefined;
      try {
        serverRoot = parseRoot(await client.get<unknown>('/api/v1/tuf/admin/metadata/root.json'));
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
      if (serverRoot) {
        // An existing repository whose root key was moved here (docs/tuf.md, "from online to offline").
        const rootKey = await keyDir.requireKey('root');
        const adopted = adoptRoot(serverRoot, rootKey);
        await keyDir.writeRoot(adopted);
        if (out.json) return printJson(out, { rootVersion: adopted.signed.version, adopted: true, pin: rootPin(adopted) });
        out.write(`adopted root v${adopted.signed.version} of ${client.server}; ${keyDir.path('root.json')} written`);
        return;
      }
      const online = await client.get<OnlineKeys>('/api/v1/tuf/admin/online-keys');
      const rootKey = await keyOrNew(keyDir, 'root');
      const targetsKey = await keyOrNew(keyDir, 'targets');
      const now = new Date();
      const root = firstRoot(
        {
          root: rootKey,
          targets: targetsKey,
          snapshot: keyFromJson(online.snapshot.keyId, online.snapshot.key),
          timestamp: keyFromJson(online.timestamp.keyId, online.timestamp.key),
        },
        now,
      );
      const targets = firstTargets(targetsKey, now);
      await client.request('PUT', '/api/v1/tuf/admin/root', { json: { root: root.toJSON(), targets: targets.toJSON() } });
      await keyDir.writeRoot(root);
      if (out.json)
        return printJson(out, { rootVersion: 1, adopted: false, pin: rootPin(root), rootKeyId: rootKey.key.keyID, targetsKeyId: targetsKey.key.keyID });
      out.write(
        `published root v1 to ${client.server}\n` +
          `  root key     ${rootKey.key.keyID}  ${keyDir.path(KeyDir.keyFile('root'))}\n` +
          `  targets key  ${targetsKey.key.keyID}  ${keyDir.path(KeyDir.keyFile('targets'))}\n` +
          `Keep ${keyDir.dir} offline; it is needed to sign uploads (fleetctl targets sign) and to rotate keys.`,
      );
    });

  keys
    .command('rotate')
    .description('publish the next root version with new keys for the given roles (the old keys are revoked)')
    .requiredOption('--key-dir <dir>', 'key directory made by fleetctl keys init')
    .requiredOption('--role <role>', `role whose key to replace: ${ROLES.join(', ')} (repeatable)`, collect)
    .action(async (options: { keyDir: string; role: string[] }, command: Command) => {
      const { client, out } = await cliContext(command);
      const roles = [...new Set(options.role)];
      const bad = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
      if (bad.length > 0) throw new UsageError(`--role: unknown role ${bad.join(', ')} (one of ${ROLES.join(', ')})`);
      const keyDir = new KeyDir(options.keyDir);
      const current = await refreshTrustedRoot(client, keyDir);
      const rootKey = await keyDir.requireKey('root');
      const now = new Date();
      const replace: Partial<Record<Role, Key>> = {};
      const fresh: Partial<Record<'root' | 'targets', SigningKey>> = {};
      for (const role of roles as Role[]) {
        if (role === 'root' || role === 'targets') {
          const key = generateSigningKey();
          // Written before publishing, so a published rotation never loses its new private key.
          await keyDir.writeNewKey(`${KeyDir.keyFile(role)}.new`, privateKeyPem(key)).catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'EEXIST')
              throw new UsageError(`${keyDir.path(`${KeyDir.keyFile(role)}.new`)} exists: an earlier rotation did not finish; remove it`);
            throw err;
          });
          fresh[role] = key;
          replace[role] = key.key;
        } else {
          // Generated on the server and kept there: the online private keys never travel.
          const staged = await client.post<{ key: unknown; keyId: string }>(`/api/v1/tuf/admin/online-keys/${role}/next`);
          replace[role] = keyFromJson(staged.keyId, staged.key);
        }
      }
      const next = rotateRoot(current, rootKey, replace, now, fresh.root);
      let targets: Metadata<Targets> | undefined;
      if (fresh.targets) {
        // Re-signed as the current root's targets keys signed it: the new key attests nothing more.
        const serverTargets = verifiedTargets(current, await client.get<unknown>('/api/v1/tuf/admin/metadata/targets.json'));
        targets = resignTargets(serverTargets, fresh.targets, now);
      }
      await client.request('PUT', '/api/v1/tuf/admin/root', { json: { root: next.toJSON(), ...(targets ? { targets: targets.toJSON() } : {}) } });
      if (fresh.root) await keyDir.replaceKey('root', rootKey.key.keyID);
      if (fresh.targets) {
        const old = await keyDir.requireKey('targets');
        await keyDir.replaceKey('targets', old.key.keyID);
      }
      await keyDir.writeRoot(next);
      const rotated = Object.fromEntries(Object.entries(replace).map(([role, key]) => [role, key.keyID]));
      if (out.json) return printJson(out, { rootVersion: next.signed.version, rotated });
      out.write(
        `published root v${next.signed.version}; new keys:\n` +
          Object.entries(rotated)
            .map(([role, id]) => `  ${role.padEnd(10)} ${id}`)
            .join('\n'),
      );
    });
}

async function keyOrNew(keyDir: KeyDir, role: 'root' | 'targets'): Promise<SigningKey> {
  const existing = await keyDir.readKey(role);
  if (existing) return existing;
  const key = generateSigningKey();
  await keyDir.writeNewKey(KeyDir.keyFile(role), privateKeyPem(key));
  return key;
}
