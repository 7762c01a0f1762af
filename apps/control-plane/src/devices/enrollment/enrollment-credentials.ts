import { type DeviceCredentials, PROTOCOL_VERSION } from '@fleetline/protocol';

/**
 * The credentials answer of an enrollment. Same shape as the pre-registration answer: the
 * public HTTP URL wins over the request's origin, TUF URLs hang off it.
 */
export function enrollmentCredentials(input: {
  deviceId: string;
  secret: string;
  root: string;
  baseUrl: string;
  mqttUrls: string[];
  /** CA bundle (PEM) the device verifies this server with; TLS_CA_FILE. */
  ca?: string;
}): DeviceCredentials {
  const baseUrl = input.baseUrl.replace(/\/+$/, '');
  return {
    deviceId: input.deviceId,
    secret: input.secret,
    // Every broker endpoint (replicas, cluster nodes); `url` stays the first for older agents.
    mqtt: { url: input.mqttUrls[0]!, urls: input.mqttUrls, clientId: input.deviceId, username: input.deviceId },
    http: { baseUrl },
    tuf: { root: input.root, metadataUrl: `${baseUrl}/api/v1/tuf/metadata`, targetsUrl: `${baseUrl}/api/v1/tuf/targets` },
    ...(input.ca ? { tls: { ca: input.ca } } : {}),
    protocolVersion: PROTOCOL_VERSION,
  };
}
