/**
 * Wire protocol version. Every MQTT payload carries it as `v`. A receiver refuses a payload whose
 * major version it does not know; additive, optional fields do not bump it.
 */
export const PROTOCOL_VERSION = 1 as const;

/** Prefix of every Fleetline topic. The version is part of it so that v2 devices can coexist on one broker. */
export const TOPIC_ROOT = 'fleet/v1' as const;
