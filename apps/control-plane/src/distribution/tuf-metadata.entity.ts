import { Column, Entity, PrimaryColumn } from 'typeorm';

/** One signed version of a top-level TUF role; `json` is served byte for byte. */
@Entity('tuf_metadata')
export class TufMetadataEntity {
  @PrimaryColumn('text')
  role: string;

  @PrimaryColumn('integer')
  version: number;

  @Column('text')
  json: string;

  @Column('timestamptz')
  expiresAt: Date;

  @Column('timestamptz')
  createdAt: Date;
}
