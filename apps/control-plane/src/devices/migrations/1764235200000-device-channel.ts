import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The device channel keeps no state in the broker: desired states are re-sent from device_models
 * on every hello, so the row must hold everything the message says (the update deadline too), and
 * presence names the connection (session) and the replica that holds it.
 */
export class DeviceChannel1764235200000 implements MigrationInterface {
  name = 'DeviceChannel1764235200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices ADD COLUMN presence_session text, ADD COLUMN presence_replica text`);
    // A crashed replica's devices are marked offline by replica: this keeps that an index lookup.
    await q.query(`CREATE INDEX devices_online_replica_idx ON devices (presence_replica) WHERE online`);
    await q.query(`ALTER TABLE device_models ADD COLUMN desired_timeout_seconds int`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE device_models DROP COLUMN desired_timeout_seconds`);
    await q.query(`DROP INDEX devices_online_replica_idx`);
    await q.query(`ALTER TABLE devices DROP COLUMN presence_session, DROP COLUMN presence_replica`);
  }
}
