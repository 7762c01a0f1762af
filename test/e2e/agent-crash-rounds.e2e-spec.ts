import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { repoRoot } from '../support/control-plane.process.js';

interface CrashRoundsResult {
  rounds: number;
  partialOrUnverified: number;
  failedStarts: number;
  stuck: number;
  assignments: { good: number; slow: number; bad: number; superseded: number; outage: number };
  killedIn: Record<string, number>;
  outcomes: Record<string, number>;
  problems: unknown[];
}

const ROUNDS = 15;

/**
 * The crash-rounds suite (test/crash/agent-crash-rounds.mjs) at CI size: a real control plane and
 * a real `fleet-agent` process, SIGKILLed at a random moment of each of 15 updates (good, failing
 * health check, superseded, and one outage past the update deadline), restarted each time. No
 * device may be left on a partial model, no agent may fail to start, and no update may be stuck.
 */
describe('fleet-agent crash rounds', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`survives ${ROUNDS} SIGKILLs at random moments of updates`, async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetline-crash-rounds-e2e-'));
    const resultsFile = join(dir, 'result.json');
    const env: NodeJS.ProcessEnv = { ...process.env, ROUNDS: String(ROUNDS), OUTAGE_EVERY: '8', RESULTS_FILE: resultsFile, ARTIFACT_BYTES: '1000000' };
    delete env['NODE_OPTIONS'];
    const child = spawn(process.execPath, [join(repoRoot, 'test/crash/agent-crash-rounds.mjs')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const result = JSON.parse(await readFile(resultsFile, 'utf8').catch(() => 'null')) as CrashRoundsResult | null;
    if (!result) throw new Error(`crash rounds wrote no result (exit ${code}):\n${output.slice(-6000)}`);
    expect({
      rounds: result.rounds,
      partial: result.partialOrUnverified,
      failedStarts: result.failedStarts,
      stuck: result.stuck,
      problems: result.problems,
    }).toEqual({
      rounds: ROUNDS,
      partial: 0,
      failedStarts: 0,
      stuck: 0,
      problems: [],
    });
    expect(result.assignments.outage).toBe(1);
    expect(code).toBe(0);
  }, 170_000);
});
