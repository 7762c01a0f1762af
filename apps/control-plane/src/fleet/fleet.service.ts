import { Injectable } from '@nestjs/common';
import semver from 'semver';
import { FleetCountsRepository } from './fleet-counts.repository.js';

export interface FleetSummary {
  devices: { total: number; online: number; offline: number };
  models: {
    model: string;
    /** Devices running each version (active version reported by the device), newest version first. */
    versions: { version: string; devices: number }[];
    /** Live devices that run no version of this model (never assigned, or assigned and not active yet). */
    unassigned: number;
  }[];
}

/**
 * The fleet summary, from the running counts (fleet-counts.repository.ts): its cost grows with the
 * number of models and versions, not with the devices, so polling it is cheap at any fleet size.
 */
@Injectable()
export class FleetService {
  constructor(private readonly counts: FleetCountsRepository) {}

  async summary(): Promise<FleetSummary> {
    const { presence, versions: counts } = await this.counts.read();
    const total = presence.online + presence.offline;
    const models = new Map<string, { version: string; devices: number }[]>();
    // Models in name order, as the GROUP BY used to give them.
    counts.sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
    for (const row of counts) {
      let versions = models.get(row.model);
      if (!versions) models.set(row.model, (versions = []));
      if (row.version !== null) versions.push({ version: row.version, devices: row.devices });
    }
    return {
      devices: { total, online: presence.online, offline: presence.offline },
      models: [...models.entries()].map(([model, versions]) => {
        versions.sort((a, b) => compareVersions(b.version, a.version));
        const running = versions.reduce((sum, v) => sum + v.devices, 0);
        return { model, versions, unassigned: Math.max(0, total - running) };
      }),
    };
  }
}

function compareVersions(a: string, b: string): number {
  const va = semver.valid(a);
  const vb = semver.valid(b);
  if (va && vb) return semver.compare(va, vb);
  return a < b ? -1 : a > b ? 1 : 0;
}
