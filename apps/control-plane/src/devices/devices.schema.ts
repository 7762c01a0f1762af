import type { FeatureSchema } from '../infra/database/feature-schema.js';
import { DeviceModelEntity } from './device-model.entity.js';
import { DeviceEntity } from './device.entity.js';
import { EnrollmentTokenEntity } from './enrollment/enrollment-token.entity.js';
import { Devices1764231000000 } from './migrations/1764231000000-devices.js';
import { DeviceModelReportSeq1764235100000 } from './migrations/1764235100000-device-model-report-seq.js';
import { DeviceChannel1764235200000 } from './migrations/1764235200000-device-channel.js';
import { DeviceModelVariant1764236400001 } from './migrations/1764236400001-device-model-variant.js';
import { EnrollmentTokenTagKeys1764237300000 } from './migrations/1764237300000-enrollment-token-tag-keys.js';
import { DeviceClientCertificate1764241000000 } from './migrations/1764241000000-device-client-certificate.js';
import { DeviceModelShadow1764241200000 } from './migrations/1764241200000-device-model-shadow.js';

/** Entities and migrations of the devices feature (collected by infra/database/schema.registry.ts). */
export const devicesSchema: FeatureSchema = {
  entities: [DeviceEntity, DeviceModelEntity, EnrollmentTokenEntity],
  migrations: [
    Devices1764231000000,
    DeviceModelReportSeq1764235100000,
    DeviceChannel1764235200000,
    DeviceModelVariant1764236400001,
    EnrollmentTokenTagKeys1764237300000,
    DeviceClientCertificate1764241000000,
    DeviceModelShadow1764241200000,
  ],
};
