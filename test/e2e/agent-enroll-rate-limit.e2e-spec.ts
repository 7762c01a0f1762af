import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, startFleetline } from '../support/agent-fleet.js';
import { AgentProcess } from '../support/agent-process.js';

/** More than a handful: every device the limit turns away is told the same Retry-After, so all of them must spread out to get through one a second. */
const DEVICES = 10;

/**
 * A fleet that boots at once behind one address meets the control plane's enrollment rate limit
 * (ENROLL_RATE_PER_SECOND, per source address): refused with 429 and Retry-After, the real
 * `fleet-agent enroll` waits at least as told, with jitter on top, and tries again until
 * --enroll-timeout, so every device enrolls instead of failing. Any other refusal fails at once.
 */
describe('fleet-agent enroll against a rate-limited control plane', () => {
  let fleet: FleetlineUnderTest;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    fleet = await startFleetline({ ENROLL_RATE_PER_SECOND: '1', ENROLL_RATE_BURST: '1' });
    for (let i = 0; i < DEVICES + 1; i++) agents.push(await AgentProcess.create());
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await fleet?.close();
  });

  // First, while the bucket still holds its one token: the refusal is the token's, not the limit's.
  it("fails at once with the server's message when the token is no good", async () => {
    const started = performance.now();
    const result = await agents[DEVICES]!.enroll(fleet.cp.baseUrl, 'fle_not-a-token-anyone-made-0000', { id: 'bad-token' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^fleet-agent: enrollment refused \(HTTP 401, enrollment-token-invalid\): unknown enrollment token$/m);
    expect(result.stderr).not.toContain('trying again');
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('enrolls every device started at once, waiting out the 429s', async () => {
    const unlimited = (await fleet.api.request<{ token: string }>('POST', '/api/v1/enrollment-tokens', { name: 'burst-unlimited', unlimited: true }, 201)).body
      .token;
    const burst = agents.slice(0, DEVICES);
    const results = await Promise.all(burst.map((a, i) => a.enroll(fleet.cp.baseUrl, unlimited, { id: `burst-${i}`, args: ['--enroll-timeout', '120'] })));
    expect(results.map((r) => (r.code === 0 ? 0 : `${r.code}: ${r.stderr}`))).toEqual(burst.map(() => 0));
    // At one enrollment a second, ten at once cannot all pass first time: some were told to wait, and said so.
    const retried = results.filter((r) => /HTTP 429, rate-limited\).*; trying again in \d+\.\d s \(attempt \d+, \d+ of 120 s spent\)/.test(r.stderr));
    expect(retried.length).toBeGreaterThan(0);
    for (let i = 0; i < DEVICES; i++) expect((await fleet.api.device(`burst-${i}`)).id).toBe(`burst-${i}`);
  }, 150_000);
});
