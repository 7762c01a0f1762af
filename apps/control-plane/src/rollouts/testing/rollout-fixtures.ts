import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { ApiClient, TestApp } from '../../testing/test-app.fixture.js';

/** Registers a model and uploads versions with the "simulated" runtime (tiny random artifacts). */
export async function seedModel(
  t: TestApp,
  api: ApiClient,
  model: string,
  versions: { version: string; compatibility?: Record<string, unknown> }[],
): Promise<void> {
  const created = await api.post('/api/v1/models', { name: model });
  if (created.status !== 201 && created.status !== 409) throw new Error(`model create: ${created.status} ${JSON.stringify(created.body)}`);
  for (const v of versions) {
    const form = new FormData();
    form.append('version', v.version);
    form.append('metadata', JSON.stringify({ runtime: 'simulated', ...(v.compatibility ? { compatibility: v.compatibility } : {}) }));
    form.append('file', new Blob([randomBytes(64)]), 'weights.bin');
    const response = await fetch(`${t.baseUrl}/api/v1/models/${model}/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminKey}` },
      body: form,
    });
    if (response.status !== 201) throw new Error(`upload ${v.version}: ${response.status} ${await response.text()}`);
  }
}

/**
 * Inserts `count` devices set-based (one INSERT ... SELECT generate_series), ids `${prefix}${n}`.
 * They have credentials hashes that match nothing: good for membership, not for MQTT.
 */
export async function seedDevices(
  t: TestApp,
  prefix: string,
  count: number,
  options: { tags?: Record<string, string>; hardwareClass?: string; agentVersion?: string; runtimes?: Record<string, string>; accelerators?: string[] } = {},
): Promise<string[]> {
  const inventory = {
    hardwareClass: options.hardwareClass ?? 'rpi4',
    os: 'linux',
    arch: 'arm64',
    accelerators: options.accelerators ?? [],
    agentVersion: options.agentVersion ?? '0.1.0',
    runtimes: options.runtimes ?? { simulated: '1.0.0' },
  };
  await t.app.get(DataSource).query(
    `INSERT INTO devices (id, tags, inventory, hardware_class, agent_version, credential_hash)
     SELECT $1 || g, $2::jsonb, $3::jsonb, $4, $5, 'x' FROM generate_series(1, $6::int) AS g`,
    [prefix, JSON.stringify(options.tags ?? {}), JSON.stringify(inventory), inventory.hardwareClass, inventory.agentVersion, count],
  );
  return Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
}
