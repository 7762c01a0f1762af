import { Injectable } from '@nestjs/common';
import DataLoader from 'dataloader';
import { DeviceCredentialsRepository } from './device-credentials.repository.js';

/** Ids looked up per query, and how long a lookup waits for others to share it (as for secrets). */
const LOOKUP_BATCH = 1000;
const LOOKUP_LINGER_MS = 3;

/**
 * Checks that a client certificate (already verified against the client CA and naming the
 * device, by the broker) is the one registered for a live device. Lookups arriving within a few
 * milliseconds share one query, so a fleet reconnecting with certificates costs a few queries;
 * nothing is cached, so a decommission or a new registration counts from the next CONNECT.
 */
@Injectable()
export class DeviceCertificateVerifier {
  private readonly loader: DataLoader<string, string | null>;

  constructor(credentials: DeviceCredentialsRepository) {
    this.loader = new DataLoader(
      async (ids) => {
        const found = await credentials.certificateFingerprints(ids);
        return ids.map((id) => found.get(id) ?? null);
      },
      { cache: false, maxBatchSize: LOOKUP_BATCH, batchScheduleFn: (run) => setTimeout(run, LOOKUP_LINGER_MS) },
    );
  }

  async verify(deviceId: string, fingerprint: string): Promise<boolean> {
    return (await this.loader.load(deviceId)) === fingerprint;
  }
}
