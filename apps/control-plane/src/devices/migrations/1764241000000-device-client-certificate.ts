import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The client certificate (SHA-256 of its DER, lowercase hex) registered for a device, with which
 * it may connect to the embedded broker without its secret (MQTT_TLS_CLIENT_CA_FILE). Looked up
 * by the device's primary key only; cleared by decommission and by re-enrollment of the id.
 */
export class DeviceClientCertificate1764241000000 implements MigrationInterface {
  name = 'DeviceClientCertificate1764241000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices ADD COLUMN client_cert_sha256 text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices DROP COLUMN client_cert_sha256`);
  }
}
