import { Global, Module } from '@nestjs/common';
import { DeviceAuthGuard } from './device-auth.guard.js';
import { DeviceCertificateVerifier } from './device-certificate-verifier.service.js';
import { DeviceCredentialVerifier } from './device-credential-verifier.service.js';
import { DeviceCredentialsRepository } from './device-credentials.repository.js';

/**
 * Device authentication, global so that any feature's controller can use DeviceAuthGuard
 * without importing DevicesModule (which itself imports ModelsModule: importing it back from
 * there would be a cycle). One verifier per app, so decommission evicts the cache everyone uses.
 */
@Global()
@Module({
  providers: [DeviceCredentialsRepository, DeviceCredentialVerifier, DeviceCertificateVerifier, DeviceAuthGuard],
  exports: [DeviceCredentialsRepository, DeviceCredentialVerifier, DeviceCertificateVerifier, DeviceAuthGuard],
})
export class DeviceAuthModule {}
