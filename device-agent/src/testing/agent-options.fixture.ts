import type { DesiredModel, DeviceCredentials } from '@fleetline/protocol';
import { join } from 'node:path';
import type { AgentOptions } from '../agent.js';
import { TufDownloader } from '../download/tuf-downloader.js';
import { FsModelStore } from '../install/model-store.js';
import { FileStateStore } from '../storage/store.js';
import type { BrokerFixture } from './broker.fixture.js';
import type { TargetServerFixture } from './target-server.fixture.js';
import type { PublishedTarget, TufRepoFixture } from './tuf-repo.fixture.js';

/**
 * What an agent in an integration test is made of, on real parts: credentials for the broker and
 * target server fixtures, a file state store, a file model store and the TUF downloader, all under
 * `dir` (which must hold tuf/root.json). The test adds runtimes, inventory and its own knobs.
 */
export function agentParts(
  dir: string,
  device: { id: string; secret: string },
  fixtures: { broker: BrokerFixture; repo: TufRepoFixture; targetServer: TargetServerFixture },
): Pick<AgentOptions, 'credentials' | 'store' | 'models' | 'downloader'> {
  const { broker, repo, targetServer } = fixtures;
  return {
    credentials: {
      deviceId: device.id,
      secret: device.secret,
      mqtt: { url: broker.url, clientId: device.id, username: device.id },
      http: { baseUrl: targetServer.baseUrl },
      tuf: { root: repo.rootJson, metadataUrl: targetServer.metadataUrl, targetsUrl: targetServer.targetsUrl },
      protocolVersion: 1,
    },
    store: new FileStateStore(join(dir, 'state')),
    models: new FsModelStore(join(dir, 'models')),
    downloader: new TufDownloader({
      deviceId: device.id,
      secret: device.secret,
      metadataUrl: targetServer.metadataUrl,
      targetsUrl: targetServer.targetsUrl,
      metadataDir: join(dir, 'tuf'),
      downloadDir: join(dir, 'downloads'),
      reserveBytes: 0,
    }),
  };
}

/** Credentials as an enrollment answer carries them, for tests of the enroll clients. */
export function enrollAnswer(baseUrl: string, deviceId: string): DeviceCredentials {
  return {
    deviceId,
    secret: 's'.repeat(48),
    mqtt: { url: 'mqtt://127.0.0.1:1', clientId: deviceId, username: deviceId },
    http: { baseUrl },
    tuf: { root: '{}', metadataUrl: `${baseUrl}/tuf/metadata`, targetsUrl: `${baseUrl}/tuf/targets` },
    protocolVersion: 1,
  };
}

/** A desired state installing one signed target with the `command` runtime. */
export function desiredTarget(target: PublishedTarget, model: string, version: string, revision: number, extra: Partial<DesiredModel> = {}): DesiredModel {
  return {
    v: 1,
    model,
    version,
    revision,
    action: 'install',
    artifacts: [{ targetPath: target.targetPath, sha256: target.sha256, length: target.length, runtime: 'command', compatibility: {} }],
    assignedAt: new Date().toISOString(),
    ...extra,
  };
}
