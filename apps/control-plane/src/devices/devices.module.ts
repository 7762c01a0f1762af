import { Module } from '@nestjs/common';
import { DesiredStateService } from './desired-state.service.js';
import { DeviceAuthModule } from './auth/device-auth.module.js';
import { ClientCertificateController } from './auth/client-certificate.controller.js';
import { DeviceBrokerAuthenticator } from './auth/device-broker-authenticator.js';
import { DeviceIngestMetrics } from './reports/device-ingest-metrics.js';
import { DeviceModelsRepository } from './device-models.repository.js';
import { DevicesController } from './devices.controller.js';
import { DevicesRepository } from './devices.repository.js';
import { DevicesService } from './devices.service.js';
import { EnrollmentDevicesRepository } from './enrollment/enrollment-devices.repository.js';
import { EnrollmentController } from './enrollment/enrollment.controller.js';
import { EnrollmentService } from './enrollment/enrollment.service.js';
import { EnrollmentTokensRepository } from './enrollment/enrollment-tokens.repository.js';
import { EnrollmentTokensService } from './enrollment/enrollment-tokens.service.js';
import { modelCatalogProvider, ModelCatalogImports } from './model-catalog.provider.js';
import { PresenceService } from './presence/presence.service.js';
import { ReportIngestService } from './reports/report-ingest.service.js';
import { DesiredSyncRepository } from './sync/desired-sync.repository.js';
import { DesiredSyncService } from './sync/desired-sync.service.js';

/**
 * Devices: provisioning and enrollment, the broker authenticator, presence, report and
 * inventory ingest, desired state and its sync on every hello. Exports DesiredStateService, ReportIngestService,
 * DeviceIngestMetrics and (through the global DeviceAuthModule) DeviceAuthGuard.
 */
@Module({
  imports: [DeviceAuthModule, ...ModelCatalogImports],
  controllers: [DevicesController, EnrollmentController, ClientCertificateController],
  providers: [
    DevicesRepository,
    DeviceModelsRepository,
    EnrollmentTokensRepository,
    DevicesService,
    EnrollmentTokensService,
    EnrollmentService,
    EnrollmentDevicesRepository,
    DesiredStateService,
    ReportIngestService,
    PresenceService,
    DesiredSyncRepository,
    DesiredSyncService,
    DeviceBrokerAuthenticator,
    DeviceIngestMetrics,
    modelCatalogProvider,
  ],
  exports: [DeviceAuthModule, DesiredStateService, DesiredSyncService, ReportIngestService, DeviceIngestMetrics, DevicesRepository],
})
export class DevicesModule {}
