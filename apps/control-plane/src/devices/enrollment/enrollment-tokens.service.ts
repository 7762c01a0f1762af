import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { Tags } from '@fleetline/protocol';
import { generateSecret, hashSecret } from '../../access/secret.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';
import { type EnrollmentTokenView, EnrollmentTokensRepository } from './enrollment-tokens.repository.js';

export interface CreatedEnrollmentToken extends EnrollmentTokenView {
  /** Shown once; only its hash is stored. */
  token: string;
}

@Injectable()
export class EnrollmentTokensService {
  constructor(private readonly tokens: EnrollmentTokensRepository) {}

  async create(input: { name: string; tags?: Tags; expiresInSeconds?: number; maxUses?: number }): Promise<CreatedEnrollmentToken> {
    const token = generateSecret('fle_');
    const view = await this.tokens.insert({
      id: randomUUID(),
      name: input.name,
      tokenHash: hashSecret(token),
      tags: input.tags ?? {},
      expiresAt: input.expiresInSeconds !== undefined ? new Date(Date.now() + input.expiresInSeconds * 1000) : null,
      maxUses: input.maxUses ?? null,
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
