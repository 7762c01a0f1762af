import { AdmissionBound } from '../admission/admission-bound.js';

/**
 * Admission control for MQTT CONNECTs (MQTT_MAX_PENDING_CONNECTS): at most `maxPending`
 * connections of this replica may be between CONNECT and CONNACK (authenticating) at once; past
 * that a CONNECT is refused at once with return code 3, "server unavailable" (MQTT 3.1.1
 * §3.2.2.3), which clients answer by backing off and retrying. See AdmissionBound for why.
 */
export class ConnectAdmission extends AdmissionBound {}
