import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { UsageError } from './exit-codes.js';

/** What `fleetctl login` saves. */
export interface SavedConfig {
  server?: string;
  key?: string;
}

export interface Connection {
  server: string;
  key: string;
}

/** `FLEETCTL_CONFIG` wins; otherwise the XDG config dir (~/.config by default). */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['FLEETCTL_CONFIG'];
  if (explicit) return explicit;
  const base = env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'fleetline', 'config.json');
}

export async function readSavedConfig(path: string): Promise<SavedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) return {};
    const { server, key } = parsed as Record<string, unknown>;
    return { server: typeof server === 'string' ? server : undefined, key: typeof key === 'string' ? key : undefined };
  } catch {
    throw new UsageError(`${path} is not valid JSON; run "fleetctl login" again`);
  }
}

/**
 * Writes the config with mode 0600 from the first byte: the file holds an API key, so it is
 * created private (writeFile's mode applies on creation) and then renamed over the old one.
 */
export async function saveConfig(path: string, config: SavedConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, path);
}

/** Flags beat environment variables, which beat the saved config. */
export function resolveConnection(flags: { server?: string; key?: string }, env: NodeJS.ProcessEnv, saved: SavedConfig): Connection {
  const server = flags.server ?? (env['FLEET_SERVER'] || undefined) ?? saved.server;
  const key = flags.key ?? (env['FLEET_API_KEY'] || undefined) ?? saved.key;
  if (!server) throw new UsageError('no server: pass --server URL, set FLEET_SERVER, or run "fleetctl login"');
  if (!key) throw new UsageError('no API key: pass --key KEY, set FLEET_API_KEY, or run "fleetctl login"');
  return { server: normalizeServer(server), key };
}

export function normalizeServer(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new UsageError(`--server must be a URL such as http://localhost:3000 (got "${server}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--server must be an http(s) URL (got "${server}")`);
  return url.toString().replace(/\/+$/, '');
}
