import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import type { TelemetryMessage } from '@fleetline/protocol';

export type Vitals = TelemetryMessage['vitals'];

/** Samples device vitals; CPU % is the agent process' share since the previous sample. */
export class VitalsSampler {
  private lastCpu = process.cpuUsage();
  private lastAt = process.hrtime.bigint();

  constructor(private readonly thermalRoot = '/sys/class/thermal') {}

  async sample(): Promise<Vitals> {
    const cpu = process.cpuUsage(this.lastCpu);
    const now = process.hrtime.bigint();
    const elapsedUs = Number(now - this.lastAt) / 1000;
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    const cpuPercent = elapsedUs > 0 ? Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 10 : 0;
    const vitals: Vitals = { cpuPercent: Math.min(cpuPercent, 100 * 1024), memoryRssBytes: process.memoryUsage.rss(), memoryFreeBytes: os.freemem() };
    const t = await this.temperature();
    if (t !== undefined) vitals.temperatureC = t;
    return vitals;
  }

  /** Highest reading of the thermal zones (millidegrees C in sysfs), when the platform has any. */
  private async temperature(): Promise<number | undefined> {
    let zones: string[];
    try {
      zones = (await readdir(this.thermalRoot)).filter((z) => z.startsWith('thermal_zone'));
    } catch {
      return undefined;
    }
    let max: number | undefined;
    for (const z of zones) {
      try {
        const milli = Number((await readFile(`${this.thermalRoot}/${z}/temp`, 'utf8')).trim());
        if (Number.isFinite(milli)) {
          const c = milli / 1000;
          if (c >= -100 && c <= 300 && (max === undefined || c > max)) max = c;
        }
      } catch {
        // zone without a readable temp: skip
      }
    }
    return max;
  }
}
