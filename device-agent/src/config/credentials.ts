import { readFile, rm, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { deviceCredentialsSchema, type DeviceCredentials } from '@fleetline/protocol';
import { writeFileAtomic, isErrnoCode } from '../storage/atomic-file.js';

export const CREDENTIALS_FILE = 'credentials.json';

export function tufMetadataDir(dataDir: string): string {
  return join(dataDir, 'tuf');
}

/**
 * Stores what enrollment returned: credentials (0600, the secret is shown once) and the TUF root
 * the device pins (TUF §5.2: the trusted root is distributed out of band; enrollment is that band).
 */
export async function saveCredentials(dataDir: string, creds: DeviceCredentials): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  await writeFileAtomic(join(dataDir, CREDENTIALS_FILE), JSON.stringify(creds, null, 2), 0o600);
  await mkdir(tufMetadataDir(dataDir), { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(tufMetadataDir(dataDir), 'root.json'), creds.tuf.root, 0o600);
}

export async function loadCredentials(dataDir: string): Promise<DeviceCredentials | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, CREDENTIALS_FILE), 'utf8');
  } catch (err: unknown) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  const parsed = deviceCredentialsSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${CREDENTIALS_FILE} is invalid: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
  return parsed.data;
}

/** Decommission: the device forgets who it is (credentials and pinned metadata). */
export async function wipeCredentials(dataDir: string): Promise<void> {
  await rm(join(dataDir, CREDENTIALS_FILE), { force: true });
  await rm(tufMetadataDir(dataDir), { recursive: true, force: true });
}
