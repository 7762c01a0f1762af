/**
 * How control-plane replicas that each run their own embedded broker reach a device connected to
 * another replica. Device -> control plane traffic never crosses replicas (the replica holding the
 * connection handles it); only control plane -> device frames do, addressed by device id.
 */
export type RouterFrame =
  /** Deliver a publish to the device's local connection. */
  | { kind: 'publish'; topic: string; payload: Buffer }
  /** The device connected somewhere with this session: any other live connection of it is stale (MQTT 3.1.1 §3.1.4 step 2). */
  | { kind: 'takeover'; session: string }
  /** Close the device's connection wherever it is (decommission). */
  | { kind: 'disconnect' };

export interface DeviceRouter {
  /** Connects; `onFrame` receives frames for devices attached here. */
  start(onFrame: (deviceId: string, frame: RouterFrame) => void): Promise<void>;
  stop(): Promise<void>;
  /** This replica holds a connection of the device: route its frames here. Resolves once routable. */
  attach(deviceId: string): Promise<void>;
  /** The connection ended (balanced with attach). */
  detach(deviceId: string): void;
  /** Resolves when the device's frames are routed here (immediately when already attached). */
  ready(deviceId: string): Promise<void>;
  /** Sends a frame to whichever replica holds the device; resolves with how many received it (0: offline). */
  send(deviceId: string, frame: RouterFrame): Promise<number>;
  /** Records that this replica is alive; returns the replicas alive within `withinMs` (for the crash sweep). */
  heartbeat(replicaId: string, withinMs: number): Promise<{ alive: string[]; dead: string[] }>;
  /** Forgets a replica after its devices were swept. */
  forget(replicaId: string): Promise<void>;
}

const KIND_PUBLISH = 1;
const KIND_TAKEOVER = 2;
const KIND_DISCONNECT = 3;

/** Binary frame: 1 byte kind, then for publish a u16 topic length, the topic and the payload. */
export function encodeFrame(frame: RouterFrame): Buffer {
  switch (frame.kind) {
    case 'publish': {
      const topic = Buffer.from(frame.topic, 'utf8');
      const head = Buffer.allocUnsafe(3);
      head.writeUInt8(KIND_PUBLISH, 0);
      head.writeUInt16BE(topic.length, 1);
      return Buffer.concat([head, topic, frame.payload]);
    }
    case 'takeover':
      return Buffer.concat([Buffer.of(KIND_TAKEOVER), Buffer.from(frame.session, 'utf8')]);
    case 'disconnect':
      return Buffer.of(KIND_DISCONNECT);
  }
}

/** Undefined for anything malformed: a frame only ever comes from another replica, but is checked anyway. */
export function decodeFrame(data: Buffer): RouterFrame | undefined {
  if (data.length < 1) return undefined;
  switch (data.readUInt8(0)) {
    case KIND_PUBLISH: {
      if (data.length < 3) return undefined;
      const length = data.readUInt16BE(1);
      if (data.length < 3 + length) return undefined;
      return { kind: 'publish', topic: data.subarray(3, 3 + length).toString('utf8'), payload: Buffer.from(data.subarray(3 + length)) };
    }
    case KIND_TAKEOVER:
      return data.length > 1 ? { kind: 'takeover', session: data.subarray(1).toString('utf8') } : undefined;
    case KIND_DISCONNECT:
      return data.length === 1 ? { kind: 'disconnect' } : undefined;
    default:
      return undefined;
  }
}
