import { Inject, Injectable, Logger } from '@nestjs/common';
import { DeviceCredentialVerifier } from '../devices/auth/device-credential-verifier.service.js';
import { DeviceCredentialsRepository } from '../devices/auth/device-credentials.repository.js';
import { RateLimitedLog } from '../infra/logging/rate-limited-log.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import {
  type AccessRequest,
  type BrokerCheckKind,
  type ConnectRequest,
  type ControlPlaneAccount,
  decideSuperuser,
  denyVerdict,
  DenyReason,
  planAccess,
  planConnect,
  type Verdict,
} from './broker-auth.decision.js';
import { BrokerAuthMetrics } from './broker-auth.metrics.js';
import { LiveDevices } from './live-devices.js';

/**
 * Answers an external broker's authentication and ACL questions with the embedded broker's own
 * rules: the same cached, batched credential check (DeviceCredentialVerifier) and the same topic
 * ACL (device-acl.ts). Every answer is counted; every denial is logged, rate-limited per reason.
 */
@Injectable()
export class BrokerAuthService {
  private readonly logger = new Logger('BrokerAuth');
  private readonly denials = new RateLimitedLog(this.logger);
  private readonly live: LiveDevices;
  readonly account: ControlPlaneAccount | undefined;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly verifier: DeviceCredentialVerifier,
    credentials: DeviceCredentialsRepository,
    private readonly metrics: BrokerAuthMetrics,
  ) {
    const mqtt = config.mqtt;
    this.account = mqtt.kind === 'external' && mqtt.username && mqtt.password ? { username: mqtt.username, password: mqtt.password } : undefined;
    this.live = new LiveDevices({ liveIds: async (ids) => new Set((await credentials.credentialHashes(ids)).keys()) });
  }

  async connect(request: ConnectRequest): Promise<Verdict> {
    const plan = planConnect(request, this.account);
    if (plan.kind === 'decided') return this.record('connect', plan.verdict, request.username);
    try {
      const ok = await this.verifier.verify(plan.deviceId, plan.secret);
      return this.record(
        'connect',
        ok ? { allow: true, superuser: false } : denyVerdict(DenyReason.BadCredentials, `bad credentials for ${plan.deviceId}`),
        plan.deviceId,
      );
    } catch (err) {
      return this.unavailable('connect', plan.deviceId, err);
    }
  }

  superuser(username: string): Verdict {
    const verdict = decideSuperuser(username, this.account);
    // Brokers ask this before every ACL check of every client: a "no" for a device is routine, counted but not logged.
    if (verdict.allow) this.metrics.allowed('superuser');
    else this.metrics.denied('superuser', verdict.reason);
    return verdict;
  }

  async access(request: AccessRequest): Promise<Verdict> {
    const plan = planAccess(request, this.account);
    if (plan.kind === 'decided') return this.record(request.action, plan.verdict, request.username);
    try {
      const live = await this.live.isLive(plan.deviceId);
      return this.record(
        request.action,
        live ? { allow: true, superuser: false } : denyVerdict(DenyReason.UnknownDevice, `${plan.deviceId} is not a live device`),
        plan.deviceId,
      );
    } catch (err) {
      return this.unavailable(request.action, plan.deviceId, err);
    }
  }

  /** A request refused before any decision (bad body, missing broker secret). */
  refused(kind: BrokerCheckKind, reason: DenyReason, detail: string): Verdict {
    return this.record(kind, denyVerdict(reason, detail), undefined);
  }

  private unavailable(kind: BrokerCheckKind, who: string, err: unknown): Verdict {
    this.logger.error(`broker ${kind} check for ${who} failed: ${err instanceof Error ? err.message : String(err)}`);
    return this.record(kind, denyVerdict(DenyReason.Unavailable, 'credential store unavailable'), who);
  }

  private record(kind: BrokerCheckKind, verdict: Verdict, who: string | undefined): Verdict {
    if (verdict.allow) {
      this.metrics.allowed(kind);
    } else {
      this.metrics.denied(kind, verdict.reason);
      this.denials.warn(
        `${kind}:${verdict.reason}`,
        `broker ${kind} denied (${verdict.reason})${who ? ` for ${printable(who)}` : ''}: ${printable(verdict.detail)}`,
      );
    }
    return verdict;
  }
}

/** Names and topics come from devices: keep log lines short and single-line. */
function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}...` : clean;
}
