import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type FleetlineUnderTest, startFleetline } from '../support/agent-fleet.js';
import { AgentProcess } from '../support/agent-process.js';

const DEVICES = 4;

/**
 * A fleet that boots at once behind one address meets the control plane's enrollment rate limit
 * (ENROLL_RATE_PER_SECOND, per source address): refused with 429 and Retry-After, the real
 * `fleet-agent enroll` waits as told and tries again, so every device enrolls instead of failing.
 */
describe('fleet-agent enroll against a rate-limited control plane', () => {
  let fleet: FleetlineUnderTest;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    fleet = await startFleetline({ ENROLL_RATE_PER_SECOND: '1', ENROLL_RATE_BURST: '1' });
    for (let i = 0; i < DEVICES; i++) agents.push(await AgentProcess.create());
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await fleet?.close();
  });

  it('enrolls every device, waiting out the 429s as Retry-After says', async () => {
    const unlimited = (await fleet.api.request<{ token: string }>('POST', '/api/v1/enrollment-tokens', { name: 'burst-unlimited', unlimited: true }, 201)).body
      .token;
    const results = await Promise.all(agents.map((a, i) => a.enroll(fleet.cp.baseUrl, unlimited, { id: `burst-${i}` })));
    expect(results.map((r) => r.code)).toEqual(agents.map(() => 0));
    // At one enrollment a second, four at once cannot all pass first time: some were told to wait.
    const retried = results.filter((r) => /HTTP 429.*trying again in \d+ s/.test(r.stderr));
    expect(retried.length).toBeGreaterThan(0);
    for (let i = 0; i < DEVICES; i++) expect((await fleet.api.device(`burst-${i}`)).id).toBe(`burst-${i}`);
  }, 120_000);
});
