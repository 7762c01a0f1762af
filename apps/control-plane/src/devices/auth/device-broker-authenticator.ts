import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { type BrokerAuthenticator, MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { SourceLimits } from '../../infra/rate-limit/source-limits.js';
import { DeviceCertificateVerifier } from './device-certificate-verifier.service.js';
import { DeviceCredentialVerifier } from './device-credential-verifier.service.js';

/**
 * Lets a client onto the embedded broker only as an existing, live device presenting its own
 * secret as password (the gateway has already bound client id = username = device id and
 * checked the last will). Registered before the broker starts (MqttModule starts it on bootstrap).
 */
@Injectable()
export class DeviceBrokerAuthenticator implements BrokerAuthenticator, OnModuleInit {
  constructor(
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly verifier: DeviceCredentialVerifier,
    private readonly limits: SourceLimits,
    private readonly certificates: DeviceCertificateVerifier,
  ) {}

  /** Failed CONNECTs share the per-address failure bucket of HTTP device authentication (DEVICE_AUTH_FAILURES_*). */
  readonly connectLimit = {
    check: (source: string): Promise<number> => this.limits.checkDeviceAuth(source, 'device_auth_mqtt'),
    failed: (source: string): Promise<void> => this.limits.deviceAuthFailed(source),
  };

  onModuleInit(): void {
    this.gateway.useAuthenticator(this);
  }

  authenticate(clientId: string, _username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    return this.verifier.verify(clientId, password?.toString('utf8'));
  }

  authenticateCertificate(clientId: string, fingerprint: string): Promise<boolean> {
    return this.certificates.verify(clientId, fingerprint);
  }
}
