import { createHash, randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { formatEnrollmentToken, type Tags } from '@fleetline/protocol';
import { generateSecret, hashSecret } from '../../access/secret.js';
import { APP_CONFIG, type AppConfig } from '../../infra/config/app-config.js';
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
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * A token expires (ENROLLMENT_TOKEN_TTL_SECONDS unless `expiresInSeconds` says otherwise) and
   * enrolls one device unless `maxUses` says how many or `unlimited` opts out: a leaked token is
   * then worth little, and a token for a batch of devices is a deliberate choice.
   */
  async create(input: {
    name: string;
    tags?: Tags;
    deviceTagKeys?: string[];
    expiresInSeconds?: number;
    maxUses?: number;
    unlimited?: boolean;
  }): Promise<CreatedEnrollmentToken> {
    if (input.unlimited === true && input.maxUses !== undefined)
      throw new DeviceException(DeviceErrorCode.InvalidEnrollmentToken, 'give either maxUses or unlimited: true, not both');
    const secret = generateSecret('fle_');
    const rootSha256 = createHash('sha256')
      .update(await this.catalog.trustedRoot())
      .digest('hex');
    const view = await this.tokens.insert({
      id: randomUUID(),
      name: input.name,
      tokenHash: hashSecret(secret),
      tags: input.tags ?? {},
      deviceTagKeys: [...new Set(input.deviceTagKeys ?? [])],
      expiresAt: new Date(Date.now() + (input.expiresInSeconds ?? this.config.enrollmentTokenTtlSeconds) * 1000),
      maxUses: input.unlimited === true ? null : (input.maxUses ?? 1),
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
