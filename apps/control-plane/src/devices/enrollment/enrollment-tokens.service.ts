import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Tags } from '@fleetline/protocol';
import { generateSecret, hashSecret } from '../../access/secret.js';
import { APP_CONFIG, type AppConfig } from '../../infra/config/app-config.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';
import { type EnrollmentTokenView, EnrollmentTokensRepository } from './enrollment-tokens.repository.js';

export interface CreatedEnrollmentToken extends EnrollmentTokenView {
  /** Shown once; only its hash is stored. */
  token: string;
}

@Injectable()
export class EnrollmentTokensService {
  constructor(
    private readonly tokens: EnrollmentTokensRepository,
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
    const token = generateSecret('fle_');
    const view = await this.tokens.insert({
      id: randomUUID(),
      name: input.name,
      tokenHash: hashSecret(token),
      tags: input.tags ?? {},
      deviceTagKeys: [...new Set(input.deviceTagKeys ?? [])],
      expiresAt: new Date(Date.now() + (input.expiresInSeconds ?? this.config.enrollmentTokenTtlSeconds) * 1000),
      maxUses: input.unlimited === true ? null : (input.maxUses ?? 1),
    });
    return { ...view, token };
  }

  list(): Promise<EnrollmentTokenView[]> {
    return this.tokens.list();
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.tokens.revoke(id))) throw new DeviceException(DeviceErrorCode.EnrollmentTokenNotFound, `no active enrollment token ${id}`);
  }
}
