import type { MqttGateway, OutboundMessage } from '../../infra/mqtt/mqtt-gateway.js';

export interface PublishFaults {
  /** Makes the next `count` publishMany calls that carry a message matching `match` fail, as a broker outage would. */
  failNext(count: number, match: (m: OutboundMessage) => boolean): void;
  /** publishMany calls failed so far. */
  readonly failed: number;
}

/**
 * Wraps the app's real MqttGateway at its own interface: matching publishMany calls reject
 * before reaching the broker (nothing is delivered), every other call goes through unchanged.
 * The database and the broker stay real; only the outcome of a publish is chosen by the test.
 */
export function injectPublishFaults(gateway: MqttGateway): PublishFaults {
  const real = gateway.publishMany.bind(gateway);
  let remaining = 0;
  let matcher: (m: OutboundMessage) => boolean = () => false;
  let failed = 0;
  gateway.publishMany = async (messages: OutboundMessage[]): Promise<void> => {
    if (remaining > 0 && messages.some((m) => matcher(m))) {
      remaining--;
      failed++;
      throw new Error('simulated broker outage: publish not accepted');
    }
    return real(messages);
  };
  return {
    failNext(count, match) {
      remaining = count;
      matcher = match;
    },
    get failed() {
      return failed;
    },
  };
}
