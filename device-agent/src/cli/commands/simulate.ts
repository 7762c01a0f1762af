import { startSimulation } from '../../simulator/simulation.js';
import { tagsOf } from '../options.js';
import type { SimulateOptions } from '../program.js';

export async function simulateCommand(o: SimulateOptions): Promise<number> {
  const t = tagsOf(o.tag);
  const duration = o.duration;
  const sim = startSimulation({
    // Repeated and/or comma-separated: enrollment is spread over every server given.
    server: o.server.join(','),
    token: o.token,
    devices: o.devices,
    workers: o.workers,
    ...(t ? { tags: t } : {}),
    behaviours: o.behaviour ?? [],
    telemetryIntervalSeconds: o.telemetryInterval,
    download: o.download,
    enrollConcurrency: o.enrollConcurrency,
    downloadConcurrency: o.downloadConcurrency,
    ...(o.idPrefix ? { idPrefix: o.idPrefix } : {}),
    ...(o.hardwareClass ? { hardwareClass: o.hardwareClass } : {}),
    // Simulated hardware: which builds (variants) of a version the devices get.
    ...(o.accelerator ? { accelerators: o.accelerator } : {}),
    ...(o.sourceAddresses !== undefined ? { sourceAddresses: o.sourceAddresses } : {}),
    ...(o.connectConcurrency !== undefined ? { connectConcurrency: o.connectConcurrency } : {}),
    log: (m) => process.stderr.write(`${m}\n`),
  });
  const started = Date.now();
  const progress = setInterval(() => {
    const s = sim.stats();
    process.stderr.write(
      `[${Math.round((Date.now() - started) / 1000)}s] enrolled ${s.enrolled}/${s.devices} (failed ${s.enrollFailed}) connected ${s.connected} active ${JSON.stringify(s.active)} reports ${JSON.stringify(s.reports)} telemetry ${s.telemetryMessages}\n`,
    );
  }, 2000);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(progress);
      process.stderr.write(`${why}: stopping simulation\n`);
      void sim.stop().then((summary) => {
        process.stdout.write(`${JSON.stringify({ ...summary, elapsedSeconds: Math.round((Date.now() - started) / 1000) }, null, 2)}\n`);
        resolve(summary.enrolled === 0 && summary.devices > 0 ? 1 : 0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    if (duration !== undefined) setTimeout(() => stop('duration reached'), duration * 1000);
  });
}
