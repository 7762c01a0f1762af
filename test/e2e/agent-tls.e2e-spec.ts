import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  createTestCa,
  fingerprintOf,
  issueServerCert,
  peerFingerprint,
  requireOpenssl,
  type TestCa,
  type TestCert,
} from '../../apps/control-plane/src/testing/test-pki.js';
import { type FleetlineUnderTest, sha256, startFleetline, waitFor } from '../support/agent-fleet.js';
import { AgentProcess, commandArtifact, writeHealthScript } from '../support/agent-process.js';
import { freePort } from '../support/control-plane.process.js';

function install(cert: TestCert, at: { certFile: string; keyFile: string }): void {
  copyFileSync(cert.keyFile, at.keyFile);
  copyFileSync(cert.certFile, at.certFile);
}

/**
 * A real fleet-agent process and the built control plane with TLS only: HTTPS for enrollment and
 * TUF downloads, MQTT over TLS, no plain MQTT listener. The agent is given the CA at enrollment.
 */
describe('fleet-agent over TLS', () => {
  let work: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let served: { certFile: string; keyFile: string };
  let fleet: FleetlineUnderTest;
  let agent: AgentProcess;
  let stranger: AgentProcess;
  let tlsPort: number;
  const MODEL = 'detector';
  const v1 = commandArtifact({ size: 200_000, seed: 'tls-v1' });

  beforeAll(async () => {
    requireOpenssl();
    work = mkdtempSync(join(tmpdir(), 'fleetline-agent-tls-'));
    ca = createTestCa(work, 'fleet-ca');
    otherCa = createTestCa(work, 'other-ca');
    served = { certFile: join(work, 'server.pem'), keyFile: join(work, 'server.key') };
    install(issueServerCert(ca, work, 'server-1'), served);
    tlsPort = await freePort();
    fleet = await startFleetline(
      {
        TLS_CERT_FILE: served.certFile,
        TLS_KEY_FILE: served.keyFile,
        TLS_CA_FILE: ca.certFile,
        TLS_WATCH_INTERVAL_MS: '0',
        MQTT_TLS_PORT: String(tlsPort),
        MQTT_PLAIN: 'false',
      },
      { ca: ca.pem },
    );
    await fleet.api.createModel(MODEL);
    await fleet.api.uploadVersion(MODEL, '1.0.0', { name: 'weights.bin', bytes: v1 }, { runtime: 'command' });
    const healthScript = await writeHealthScript(work);
    agent = await AgentProcess.create({ config: { runtimes: { command: { command: healthScript, timeoutSeconds: 30 } } } });
    stranger = await AgentProcess.create();
  }, 120_000);

  afterAll(async () => {
    for (const a of [agent, stranger]) {
      if (!a) continue;
      if (a.running) await a.stop();
      await a.remove();
    }
    await fleet?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('refuses to enroll against a server its CA does not vouch for', async () => {
    const token = await fleet.api.createEnrollmentToken('tls-stranger');
    const result = await stranger.enroll(fleet.cp.baseUrl, token, { id: 'tls-stranger', caFile: otherCa.certFile });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/cannot reach .*enroll/);
    expect(stranger.deviceId).toBe('');
  });

  it('enrolls over HTTPS with --ca-file and keeps mqtts:// addresses and the CA', async () => {
    const token = await fleet.api.createEnrollmentToken('tls-batch');
    const result = await agent.enroll(fleet.cp.baseUrl, token, { id: 'tls-cam-1', caFile: ca.certFile });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const creds = JSON.parse(readFileSync(join(agent.dataDir, 'credentials.json'), 'utf8')) as {
      mqtt: { urls: string[] };
      tuf: { targetsUrl: string };
      tls?: { ca: string };
    };
    expect(creds.mqtt.urls).toEqual([`mqtts://127.0.0.1:${tlsPort}`]);
    expect(creds.tuf.targetsUrl).toMatch(/^https:\/\//);
    expect(creds.tls?.ca).toBe(ca.pem);
  });

  it('connects over mqtts:// and installs a version downloaded over HTTPS', async () => {
    await agent.start();
    await waitFor('tls-cam-1 online', async () => ((await fleet.api.device('tls-cam-1')).online ? true : undefined));
    await fleet.api.assign('tls-cam-1', MODEL, '1.0.0');
    const state = await fleet.api.waitForReport('tls-cam-1', MODEL, '1.0.0', 'committed');
    expect(state).toMatchObject({ activeVersion: '1.0.0', failure: null });
    expect(sha256(await agent.activeFile(MODEL, 'weights.bin'))).toBe(sha256(v1));
  });

  it('serves a renewed certificate after SIGHUP without stopping, and the agent reconnects under it', async () => {
    const renewed = issueServerCert(ca, work, 'server-2');
    install(renewed, served);
    fleet.cp.child.kill('SIGHUP');
    await waitFor('renewed certificate', async () => ((await peerFingerprint(tlsPort, ca.pem)) === fingerprintOf(renewed.pem) ? true : undefined), 10_000);
    expect(fleet.cp.child.exitCode).toBeNull();
    // The open connection was kept; a new one (after an agent restart) verifies the renewed certificate.
    expect((await fleet.api.device('tls-cam-1')).online).toBe(true);
    await agent.stop();
    await waitFor('tls-cam-1 offline', async () => ((await fleet.api.device('tls-cam-1')).online ? undefined : true));
    await agent.start();
    await waitFor('tls-cam-1 online again', async () => ((await fleet.api.device('tls-cam-1')).online ? true : undefined));
  });
});
