import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { credentialBindingOf, type DeviceCredentials, PROTOCOL_VERSION, type Tags, isValidDeviceId } from '@fleetline/protocol';
import { generateSecret, hashSecret } from '../access/secret.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import type { Page } from '../infra/http/keyset-page.js';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { TransportSecurity } from '../infra/tls/transport-security.js';
import { DesiredStateService } from './desired-state.service.js';
import { DeviceCredentialVerifier } from './auth/device-credential-verifier.service.js';
import { deviceCursor, type DeviceListFilter } from './device-filter.js';
import { enrollmentCredentials } from './enrollment/enrollment-credentials.js';
import { DeviceErrorCode, DeviceException } from './devices.exception.js';
import { assertNotReserved } from './auth/reserved-device-id.js';
import { type DeviceDetail, type DeviceModelState, DevicesRepository, type DeviceSummary } from './devices.repository.js';
import { ModelCatalog } from './model-catalog.js';

export type DeviceListItem = DeviceSummary & { models: Pick<DeviceModelState, 'model' | 'desiredVersion' | 'activeVersion' | 'reportedState' | 'variant'>[] };

/** Provisioning, enrollment, inventory views and decommissioning of devices. */
@Injectable()
export class DevicesService {
  private readonly logger = new Logger('Devices');

  constructor(
    private readonly devices: DevicesRepository,
    private readonly verifier: DeviceCredentialVerifier,
    private readonly desired: DesiredStateService,
    private readonly catalog: ModelCatalog,
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(TransportSecurity) private readonly security?: TransportSecurity,
  ) {}

  /** Pre-registration by an operator. The secret is in this answer only. */
  async provision(input: { id: string; name?: string; tags?: Tags }, requestOrigin: string): Promise<DeviceCredentials> {
    if (!isValidDeviceId(input.id))
      throw new DeviceException(DeviceErrorCode.InvalidDeviceId, 'device id: 1-128 chars of [A-Za-z0-9._:-], starting alphanumeric');
    assertNotReserved(input.id);
    const root = await this.catalog.trustedRoot();
    const secret = generateSecret('fld_');
    const inserted = await this.devices.insert({
      id: input.id,
      name: input.name ?? null,
      tags: input.tags ?? {},
      credentialHash: hashSecret(secret),
      enrollmentTokenId: null,
      inventory: null,
    });
    if (!inserted) throw new DeviceException(DeviceErrorCode.DuplicateDevice, `device ${input.id} already exists`);
    this.verifier.evict(input.id);
    return this.credentials(input.id, secret, root, requestOrigin);
  }

  async list(filter: DeviceListFilter): Promise<Page<DeviceListItem>> {
    const rows = await this.devices.list(filter);
    const page = rows.slice(0, filter.limit);
    const models = await this.devices.modelsOf(page.map((d) => d.id));
    return {
      items: page.map((d) => ({
        ...d,
        models: (models.get(d.id) ?? []).map(({ model, desiredVersion, activeVersion, reportedState, variant }) => ({
          model,
          desiredVersion,
          activeVersion,
          reportedState,
          variant,
        })),
      })),
      next: rows.length > filter.limit ? deviceCursor(page[page.length - 1]!.id) : null,
    };
  }

  async get(id: string): Promise<DeviceDetail> {
    const device = isValidDeviceId(id) ? await this.devices.findDetail(id) : undefined;
    if (!device) throw new DeviceException(DeviceErrorCode.DeviceNotFound, `no device ${id}`);
    return device;
  }

  async update(id: string, patch: { name?: string; tags?: Tags; tagsMode?: 'merge' | 'replace' }): Promise<DeviceDetail> {
    await this.requireLive(id);
    if (patch.tags !== undefined && !(await this.devices.updateTags(id, patch.tags, patch.tagsMode ?? 'replace'))) this.notFound(id);
    if (patch.name !== undefined && !(await this.devices.updateName(id, patch.name))) this.notFound(id);
    return this.get(id);
  }

  /**
   * Decommission: the credential is cleared (HTTP and MQTT refuse it at once on this replica;
   * other replicas' caches forget it within CREDENTIAL_CACHE_TTL_MS), the live MQTT connection is
   * dropped on whichever replica holds it, and per-model state is deleted. The broker holds nothing
   * else of the device (no retained messages, clean sessions), so nothing is left to clear. The row
   * stays (audit, `?decommissioned=true`); the id can be enrolled again later.
   */
  async decommission(id: string): Promise<void> {
    if (!isValidDeviceId(id)) this.notFound(id);
    const decommissioned = await this.devices.decommission(id);
    if (!decommissioned) this.notFound(id);
    this.verifier.evict(id);
    try {
      // Tell a connected agent to stop and forget its credentials (best effort: it is about to be cut
      // off anyway), bound to this credential so it can never wipe a later enrollment of the same id.
      const credential = decommissioned.credentialHash ? credentialBindingOf(decommissioned.credentialHash) : undefined;
      await this.desired.sendCommand(id, { v: PROTOCOL_VERSION, type: 'decommission', ...(credential ? { credential } : {}) });
      await this.gateway.disconnectClient(id);
    } catch (err) {
      this.logger.warn(`decommissioned ${id} but telling its connection failed: ${String(err)}`);
    }
    this.logger.log(`device ${id} decommissioned`);
  }

  async assertLive(id: string): Promise<void> {
    await this.requireLive(id);
  }

  private async requireLive(id: string): Promise<void> {
    if (!isValidDeviceId(id) || !(await this.devices.isLive(id))) this.notFound(id);
  }

  private notFound(id: string): never {
    throw new DeviceException(DeviceErrorCode.DeviceNotFound, `no device ${id}`);
  }

  private credentials(deviceId: string, secret: string, root: string, requestOrigin: string): DeviceCredentials {
    return enrollmentCredentials({
      deviceId,
      secret,
      root,
      baseUrl: this.config.http.publicUrl ?? requestOrigin,
      mqttUrls: this.gateway.publicUrls(),
      ca: this.security?.deviceCa(),
    });
  }
}
