import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseEnrollmentToken } from '@fleetline/protocol';
import { TufRepoFixture } from '../../device-agent/src/testing/tuf-repo.fixture.js';
import { type FleetlineUnderTest, startFleetline } from '../support/agent-fleet.js';
import { AgentProcess } from '../support/agent-process.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * A man in the middle of enrollment: forwards `POST /api/v1/enroll` to the real control plane and
 * swaps the TUF root in its answer for one whose keys the attacker holds.
 */
async function rootSwappingProxy(upstream: string, impostorRoot: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async (): Promise<void> => {
        const answer = await fetch(`${upstream}${req.url ?? '/'}`, {
          method: req.method ?? 'GET',
          headers: { 'content-type': 'application/json' },
          ...(req.method === 'POST' ? { body: Buffer.concat(chunks) } : {}),
        });
        const body = (await answer.json()) as { tuf?: { root: string } };
        if (body.tuf) body.tuf.root = impostorRoot;
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/**
 * `fleet-agent enroll` against the built control plane: the root it pins comes from the token's
 * pin, `--root-sha256` or `--root-file`, and an answer with any other root is refused with
 * nothing written to the data dir.
 */
describe('fleet-agent enroll: out-of-band TUF root', () => {
  let fleet: FleetlineUnderTest;
  let mitm: { url: string; server: Server };
  let work: string;
  const agents: AgentProcess[] = [];
  const impostorRoot = new TufRepoFixture().rootJson;

  const newAgent = async (): Promise<AgentProcess> => {
    const agent = await AgentProcess.create();
    agents.push(agent);
    return agent;
  };
  const currentRoot = async (): Promise<string> => {
    // What a device enrolled with a pinned token stores is the control plane's root, byte for byte.
    const agent = await newAgent();
    expect((await agent.enroll(fleet.cp.baseUrl, await fleet.api.createEnrollmentToken('probe'))).code).toBe(0);
    return readFile(join(agent.dataDir, 'tuf', 'root.json'), 'utf8');
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetline-enroll-trust-'));
    fleet = await startFleetline();
    mitm = await rootSwappingProxy(fleet.cp.baseUrl, impostorRoot);
  }, 120_000);

  afterAll(async () => {
    await new Promise<void>((resolve) => (mitm ? mitm.server.close(() => resolve()) : resolve()));
    for (const a of agents) await a.remove();
    await fleet?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('enrolls with the token as handed out, pins the root its pin names, and says nothing about trust', async () => {
    const token = await fleet.api.createEnrollmentToken('pinned');
    const agent = await newAgent();
    const enrolled = await agent.enroll(fleet.cp.baseUrl, token, { id: 'pinned-1' });
    expect(enrolled).toMatchObject({ code: 0, stderr: '' });
    const pinned = await readFile(join(agent.dataDir, 'tuf', 'root.json'), 'utf8');
    expect(sha256(pinned).startsWith(parseEnrollmentToken(token).rootPin!)).toBe(true);
  });

  it("refuses an answer whose root is not the token's, with a clear error, writing nothing", async () => {
    const token = await fleet.api.createEnrollmentToken('mitm');
    const agent = await newAgent();
    const enrolled = await agent.enroll(mitm.url, token, { id: 'mitm-1' });
    expect(enrolled.code).toBe(1);
    expect(enrolled.stderr).toContain(`refusing to enroll: ${mitm.url} answered with a TUF root whose sha256 is ${sha256(impostorRoot)}`);
    expect(enrolled.stderr).toContain('Nothing was written');
    expect(await readdir(agent.dataDir)).toEqual([]);
  });

  it('--root-sha256 pins a root too; one the control plane never published is refused there, before a device is created', async () => {
    const { secret } = parseEnrollmentToken(await fleet.api.createEnrollmentToken('by-flag'));
    const root = await currentRoot();
    const good = await newAgent();
    expect(await good.enroll(fleet.cp.baseUrl, secret, { id: 'flag-1', args: ['--root-sha256', sha256(root)] })).toMatchObject({ code: 0, stderr: '' });
    const viaMitm = await newAgent();
    const swapped = await viaMitm.enroll(mitm.url, secret, { id: 'flag-2', args: ['--root-sha256', sha256(root)] });
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toContain('but the --root-sha256 is');
    expect(await readdir(viaMitm.dataDir)).toEqual([]);

    const unknown = await newAgent();
    const refused = await unknown.enroll(fleet.cp.baseUrl, secret, { id: 'flag-3', args: ['--root-sha256', sha256(impostorRoot)] });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('HTTP 409, enrollment-root-unknown');
    expect(await readdir(unknown.dataDir)).toEqual([]);
    expect((await fleet.api.request('GET', '/api/v1/devices/flag-3')).status).toBe(404);
  });

  it('--root-file pins the file; an answer with another root of the same version is refused', async () => {
    const { secret } = parseEnrollmentToken(await fleet.api.createEnrollmentToken('by-file'));
    const rootFile = join(work, 'root.json');
    await writeFile(rootFile, JSON.stringify(JSON.parse(await currentRoot()), null, 2));
    const good = await newAgent();
    expect(await good.enroll(fleet.cp.baseUrl, secret, { id: 'file-1', args: ['--root-file', rootFile] })).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(good.dataDir, 'tuf', 'root.json'), 'utf8')).toBe(await readFile(rootFile, 'utf8'));
    const viaMitm = await newAgent();
    const swapped = await viaMitm.enroll(mitm.url, secret, { id: 'file-2', args: ['--root-file', rootFile] });
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toContain('serves a TUF root version 1 that differs from version 1');
    expect(await readdir(viaMitm.dataDir)).toEqual([]);
  });

  it('without a pin or a root file, trusts the first answer but warns', async () => {
    const { secret } = parseEnrollmentToken(await fleet.api.createEnrollmentToken('tofu'));
    const agent = await newAgent();
    const enrolled = await agent.enroll(fleet.cp.baseUrl, secret, { id: 'tofu-1' });
    expect(enrolled.code).toBe(0);
    expect(enrolled.stderr).toContain('warning: trusting the TUF root');
    expect(enrolled.stderr).toContain('on first use');
  });
});
