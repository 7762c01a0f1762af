import { setFlagsFromString } from 'node:v8';
import { startAgent } from '../../run-agent.js';
import type { RunOptions } from '../program.js';

/*
 * V8 grows the young generation (up to 2 x 16 MB) after a burst of allocation, such as the start-up
 * or a download, and keeps it for the life of the process: measured, that was ≈ 25 MB of the idle
 * agent's RSS. The agent allocates little and rarely, so it keeps the initial size; the price is
 * more frequent (small, sub-millisecond) scavenges during an update. The flag is read at each
 * resize, so setting it here, before the agent starts, takes effect (test/bench/agent-memory).
 */
export const AGENT_V8_FLAGS = '--semi-space-growth-factor=1';

export async function runCommand(o: RunOptions): Promise<number> {
  setFlagsFromString(AGENT_V8_FLAGS);
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
