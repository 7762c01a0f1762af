import { createHash, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { formatEnrollmentToken, type Tags } from '@fleetline/protocol';
import { generateSecret, hashSecret } from '../../access/secret.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';
import { ModelCatalog } from '../model-catalog.js';
import { type EnrollmentTokenView, EnrollmentTokensRepository } from './enrollment-tokens.repository.js';

export interface CreatedEnrollmentToken extends EnrollmentTokenView {
  /**
   * Shown once: `<secret>.<root pin>` (formatEnrollmentToken). Only the secret's hash is stored;
   * the pin lets `fleet-agent enroll` refuse a root other than the one current now.
   */
  token: string;
  /** sha256 of the root.json current when the token was made (what the token's pin abbreviates). */
  rootSha256: string;
}

@Injectable()
export class EnrollmentTokensService {
  constructor(
    private readonly tokens: EnrollmentTokensRepository,
    private readonly catalog: ModelCatalog,
  ) {}

  async create(input: { name: string; tags?: Tags; expiresInSeconds?: number; maxUses?: number }): Promise<CreatedEnrollmentToken> {
    const secret = generateSecret('fle_');
    const rootSha256 = createHash('sha256')
      .update(await this.catalog.trustedRoot())
      .digest('hex');
    const view = await this.tokens.insert({
      id: randomUUID(),
      name: input.name,
      tokenHash: hashSecret(secret),
      tags: input.tags ?? {},
      expiresAt: input.expiresInSeconds !== undefined ? new Date(Date.now() + input.expiresInSeconds * 1000) : null,
      maxUses: input.maxUses ?? null,
    });
    return { ...view, token: formatEnrollmentToken(secret, rootSha256), rootSha256 };
  }

  list(): Promise<EnrollmentTokenView[]> {
    return this.tokens.list();
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.tokens.revoke(id))) throw new DeviceException(DeviceErrorCode.EnrollmentTokenNotFound, `no active enrollment token ${id}`);
  }
}
