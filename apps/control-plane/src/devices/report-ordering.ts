import type { UpdateReport } from '@fleetline/protocol';

/**
 * Ordering rules for device update reports, as pure functions (unit-tested in report-ordering.spec.ts).
 *
 * Every report carries the device's report sequence number (`seq`), which grows for the life of
 * the device's data dir. The control plane keeps the highest accepted one per device
 * (devices.last_report_seq) and:
 *  1. accepts a report only when seq > last_report_seq. Equal seq = duplicate (QoS1 redelivery,
 *     MQTT 3.1.1 §4.3.2), lower seq = stale (arrived late). Both are ignored, so applying the same
 *     batch twice changes nothing (idempotent);
 *  2. within a batch, the newest accepted report per (device, model) is the one applied, and
 *     last_report_seq becomes the highest accepted seq of the device;
 *  3. a report about an older revision than the current desired one (revision < desired_revision)
 *     still updates active_version / previous_version — that is the truth about what runs on the
 *     device — but not report_version/report_state/report_revision/failure, which describe the
 *     progress of the current assignment (rule applied in SQL, see reportAppliesToAssignment).
 */
export interface IncomingReport {
  deviceId: string;
  report: UpdateReport;
}

export interface ReportPlan {
  /** Newest accepted report per (device, model), in device/model order. */
  apply: IncomingReport[];
  /** New last_report_seq per device that had at least one accepted report. */
  deviceSeq: Map<string, number>;
  accepted: number;
  duplicate: number;
  stale: number;
  unknownDevice: number;
}

/**
 * Splits a batch into what to apply. `lastSeq` has the current last_report_seq of every known,
 * live device in the batch; devices absent from it are unknown or decommissioned.
 */
export function planReportBatch(batch: readonly IncomingReport[], lastSeq: ReadonlyMap<string, number>): ReportPlan {
  const plan: ReportPlan = { apply: [], deviceSeq: new Map(), accepted: 0, duplicate: 0, stale: 0, unknownDevice: 0 };
  const seen = new Map<string, Set<number>>();
  const newest = new Map<string, IncomingReport>();
  for (const item of batch) {
    const floor = lastSeq.get(item.deviceId);
    if (floor === undefined) {
      plan.unknownDevice++;
      continue;
    }
    const seq = item.report.seq;
    let seqs = seen.get(item.deviceId);
    if (!seqs) seen.set(item.deviceId, (seqs = new Set()));
    if (seq === floor || seqs.has(seq)) {
      plan.duplicate++;
      continue;
    }
    if (seq < floor) {
      plan.stale++;
      continue;
    }
    seqs.add(seq);
    plan.accepted++;
    plan.deviceSeq.set(item.deviceId, Math.max(plan.deviceSeq.get(item.deviceId) ?? -1, seq));
    const key = `${item.deviceId}\u0000${item.report.model}`;
    const current = newest.get(key);
    if (!current || current.report.seq < seq) newest.set(key, item);
  }
  plan.apply = [...newest.values()].sort((a, b) => compare(a.deviceId, b.deviceId) || compare(a.report.model, b.report.model));
  return plan;
}

/** Rule 3: whether a report may move the progress fields of the device's current assignment. */
export function reportAppliesToAssignment(reportRevision: number, desiredRevision: number): boolean {
  return reportRevision >= desiredRevision;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
