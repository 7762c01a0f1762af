import { startSimulationInProcess, type SimulationHandle, type SimulationOptions } from './simulation.js';

/**
 * Child process of a multi-process simulation: runs its slice of the fleet and reports stats to
 * the parent over IPC (once a second unless statsIntervalMs says otherwise).
 */
let handle: SimulationHandle | undefined;
let timer: NodeJS.Timeout | undefined;

function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}

let stopping = false;

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  const stats = handle ? await handle.stop() : undefined;
  send({ type: 'stopped', stats });
  process.disconnect?.();
  process.exit(0);
}

process.on('message', (m: { type: 'start'; opts: SimulationOptions } | { type: 'connect' } | { type: 'stop' }) => {
  if (m.type === 'start' && !handle) {
    handle = startSimulationInProcess({ ...m.opts, log: (msg) => process.stderr.write(`[worker ${process.pid}] ${msg}\n`) });
    timer = setInterval(() => send({ type: 'stats', stats: handle!.stats() }), m.opts.statsIntervalMs ?? 1000);
    void handle.enrolled.then(() => send({ type: 'enrolled', stats: handle!.stats() }));
    void handle.ready.then(() => send({ type: 'ready', stats: handle!.stats() }));
  } else if (m.type === 'connect') {
    handle?.connect();
  } else if (m.type === 'stop') {
    void stop();
  }
});
// The parent handles signals and tells us to stop; a lost parent means stop too.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
