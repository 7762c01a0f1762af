import { AdmissionBound } from '../admission/admission-bound.js';

/**
 * Admission control for MQTT CONNECTs (MQTT_MAX_PENDING_CONNECTS): at most `maxPending`
 * connections of this replica may be establishing at once; past that a CONNECT is refused at once
 * with return code 3, "server unavailable" (MQTT 3.1.1 §3.2.2.3), which clients answer by backing
 * off and retrying. See AdmissionBound for why.
 *
 * "Establishing" lasts from CONNECT until the connection's first message is stored (the device's
 * hello, which costs this replica the most of any message: presence, and every desired state the
 * database holds for the device), or until it goes away, or HELLO_HOLD_MS after CONNACK at most.
 * Releasing the slot at CONNACK would bound only authentication: a fleet reconnecting at once
 * would then queue 100,000 hellos behind each other, each waiting for its PUBACK longer than the
 * device's keepalive allows (a device's PINGREQ is read only after its hello is handled), so
 * devices drop and retry while the replica still works on hellos nobody waits for.
 */
export class ConnectAdmission extends AdmissionBound {}

/** How long an accepted connection may hold its admission slot waiting for its first message. */
export const HELLO_HOLD_MS = 15_000;
