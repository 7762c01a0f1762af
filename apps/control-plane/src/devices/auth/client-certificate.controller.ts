import { Body, Controller, Delete, HttpCode, Inject, Optional, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireRole } from '../../access/access.decorators.js';
import { TransportSecurity } from '../../infra/tls/transport-security.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';
import { RegisterClientCertificateDto } from '../dto/register-client-certificate.dto.js';
import { decideCertificateBinding } from './client-certificate-binding.js';
import { DeviceCredentialsRepository } from './device-credentials.repository.js';

export interface RegisteredClientCertificate {
  deviceId: string;
  /** SHA-256 of the certificate (DER), lowercase hex. */
  sha256: string;
  subject: string;
  validTo: string;
}

/**
 * Binds a client certificate to an enrolled device: with it the device connects to the embedded
 * broker over TLS without its secret. One certificate per device; registering another replaces
 * it (rotation), DELETE unbinds, and decommission or re-enrollment of the id drops it, so a
 * CA-signed certificate of a device that is gone or never enrolled is refused.
 */
@ApiTags('devices')
@ApiBearerAuth()
@Controller('api/v1/devices')
export class ClientCertificateController {
  constructor(
    private readonly credentials: DeviceCredentialsRepository,
    @Optional() @Inject(TransportSecurity) private readonly security?: TransportSecurity,
  ) {}

  @Put(':id/client-certificate')
  @RequireRole('operator')
  @ApiOperation({ summary: "Register a device's MQTT client certificate (mTLS)" })
  async register(@Param('id') id: string, @Body() dto: RegisterClientCertificateDto): Promise<RegisteredClientCertificate> {
    const clientCa = this.security?.current().clientCa;
    if (clientCa === undefined) throw new DeviceException(DeviceErrorCode.ClientCertificatesOff, 'client certificates are off: set MQTT_TLS_CLIENT_CA_FILE');
    const decision = decideCertificateBinding(dto.certificate, id, clientCa, new Date());
    if (!decision.ok) throw new DeviceException(DeviceErrorCode.InvalidClientCertificate, decision.reason);
    if (!(await this.credentials.setCertificateFingerprint(id, decision.fingerprint)))
      throw new DeviceException(DeviceErrorCode.DeviceNotFound, `no enrolled device ${id}`);
    return { deviceId: id, sha256: decision.fingerprint, subject: decision.subject, validTo: decision.validTo };
  }

  @Delete(':id/client-certificate')
  @RequireRole('operator')
  @HttpCode(204)
  @ApiOperation({ summary: "Remove a device's MQTT client certificate" })
  async remove(@Param('id') id: string): Promise<void> {
    if (!(await this.credentials.setCertificateFingerprint(id, null))) throw new DeviceException(DeviceErrorCode.DeviceNotFound, `no enrolled device ${id}`);
  }
}
