import { CONTROL_PLANE_CLIENT_ID_PREFIX } from '../../broker-auth/broker-auth.decision.js';
import { DeviceErrorCode, DeviceException } from '../devices.exception.js';

/**
 * Ids the control plane's own broker clients use (`fleetline-cp-…`). The broker-auth endpoints
 * treat such a client as the control plane, so a device under such an id could never connect, and
 * must never be able to look like the control plane: refused in any letter case, at every door
 * (pre-registration and enrollment), not only at the broker.
 */
const RESERVED = CONTROL_PLANE_CLIENT_ID_PREFIX.replace(/-$/, '').toLowerCase();

export function isReservedDeviceId(id: string): boolean {
  return id.toLowerCase().startsWith(RESERVED);
}

export function assertNotReserved(id: string): void {
  if (isReservedDeviceId(id))
    throw new DeviceException(DeviceErrorCode.ReservedDeviceId, `device ids starting with "${RESERVED}" are reserved for the control plane`);
}
