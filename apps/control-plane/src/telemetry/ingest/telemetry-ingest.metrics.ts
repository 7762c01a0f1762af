import type { TelemetryRejectReason } from './telemetry-bounds.js';

/**
 * Counters of the telemetry ingest pipeline (exposed on /metrics by the metrics feature).
 * Plain numbers: the pipeline's hot path must not pay for a metrics library call per message.
 */
export class TelemetryIngestMetrics {
  /** Messages seen on the telemetry topics. */
  received = 0;
  /** Samples written (new rows). */
  accepted = 0;
  /** Redelivered or replayed samples (same device, seq and interval) ignored. */
  duplicate = 0;
  /** Payloads that failed the protocol schema (or came on a topic that is not a device's). */
  malformed = 0;
  /** Samples from devices that are not enrolled (or decommissioned). */
  unknownDevice = 0;
  /** Samples whose interval ends outside the stored window (older than retention or too far ahead). */
  outOfWindow = 0;
  /** Samples dropped because the ingest queue was full: none since a full queue makes the broker wait (kept for the exported series). */
  droppedOverload = 0;
  /** Samples that arrived while the queue was full and waited for room (back-pressure, nothing dropped). */
  waitedForRoom = 0;
  /** Samples that arrived after the pipeline closed for shutdown: not acknowledged, the device resends them. */
  droppedShutdown = 0;
  /** Shadow blocks stored (telemetry_shadow_samples). */
  shadowAccepted = 0;
  /** Shadow blocks left out: duplicates, samples not stored, or devices that are not in a wave of the rollout they name. */
  shadowLeftOut = 0;
  /** Sum of the `dropped` field of accepted messages: what devices lost from their own offline queues. */
  agentDropped = 0;
  /** Samples not stored because their batch write failed (database unavailable): not acknowledged, the devices resend them. */
  writeFailed = 0;
  /** Samples the database refused for their data (SQLSTATE 22/23) on their own: acknowledged and dropped, a resend could never be stored. */
  refused = 0;
  /**
   * Well-formed samples refused because what they claim could skew a rollout decision, by reason
   * (telemetry-bounds.ts): acknowledged and dropped, a resend would be refused again.
   */
  readonly rejected: Record<TelemetryRejectReason, number> = { rate: 0, interval: 0, counter: 0, future: 0, seq: 0, overlap: 0 };
  batches = 0;
  /** Duration of the last batch write, in milliseconds. */
  lastBatchMs = 0;
  /** Size of the last batch written. */
  lastBatchSize = 0;
  /** Samples waiting in memory right now. */
  queued = 0;

  snapshot(): Record<string, number> {
    const { rejected, ...counters } = this;
    const out = { ...counters } as unknown as Record<string, number>;
    for (const [reason, n] of Object.entries(rejected)) out[`rejected_${reason}`] = n;
    return out;
  }
}
