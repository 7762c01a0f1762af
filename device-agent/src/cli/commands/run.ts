import { startAgent } from '../../run-agent.js';
import type { RunOptions } from '../program.js';

export async function runCommand(o: RunOptions): Promise<number> {
  const running = await startAgent(o.dataDir);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${signal}: stopping\n`);
      void running.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    running.agent.once('decommissioned', () => {
      process.stderr.write('decommissioned: credentials wiped\n');
      void running.stop().then(() => resolve(0));
    });
  });
}
