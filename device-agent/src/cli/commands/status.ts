import { join } from 'node:path';
import { isTerminalUpdateState } from '@fleetline/protocol';
import { AGENT_VERSION } from '../../agent-version.js';
import { loadCredentials } from '../../config/credentials.js';
import { FsModelStore } from '../../install/model-store.js';
import { FileStateStore } from '../../storage/store.js';
import { UpdateJournal } from '../../update/journal.js';
import type { StatusOptions } from '../program.js';

export async function statusCommand(o: StatusOptions): Promise<number> {
  const { dataDir } = o;
  const creds = await loadCredentials(dataDir);
  const models = new FsModelStore(join(dataDir, 'models'));
  const state = new FileStateStore(join(dataDir, 'state'));
  const journal = new UpdateJournal(state);
  const entries = await journal.all();
  const names = new Set([...(await models.models()), ...entries.map((e) => e.model)]);
  const rows = [];
  for (const model of [...names].sort()) {
    const p = await models.pointers(model);
    const e = entries.find((x) => x.model === model);
    // The build installed for the active version (recorded by the reconciler at install).
    const variant = p.active ? ((await state.read<{ variant: string }>(`variant/${model}/${p.active}`))?.variant ?? null) : null;
    rows.push({
      model,
      activeVersion: p.active,
      activeVariant: variant,
      lastKnownGood: p.previous,
      path: p.active ? models.versionPath(model, p.active) : null,
      update: e
        ? {
            version: e.desired.version,
            revision: e.desired.revision,
            variant: e.desired.variant ?? null,
            state: e.state,
            inFlight: !isTerminalUpdateState(e.state),
            restarts: e.restarts,
            failure: e.failure ?? null,
            updatedAt: e.updatedAt,
          }
        : null,
    });
  }
  const status = { deviceId: creds?.deviceId ?? null, enrolled: creds !== undefined, agentVersion: AGENT_VERSION, models: rows };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`device: ${status.deviceId ?? '(not enrolled)'}   agent ${AGENT_VERSION}\n`);
  if (rows.length === 0) process.stdout.write('no models\n');
  for (const r of rows) {
    const u = r.update
      ? `${r.update.state} ${r.update.version} (rev ${r.update.revision})${r.update.failure ? ` ${r.update.failure.code}: ${r.update.failure.message}` : ''}`
      : '-';
    process.stdout.write(
      `${r.model}: active ${r.activeVersion ?? '-'}${r.activeVariant ? ` (${r.activeVariant})` : ''}  last-known-good ${r.lastKnownGood ?? '-'}  update ${u}\n`,
    );
  }
  return 0;
}
