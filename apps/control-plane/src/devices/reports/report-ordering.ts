import type { UpdateReport } from '@fleetline/protocol';

/**
 * Ordering rules for device update reports, as pure functions (unit-tested in report-ordering.spec.ts).
 *
 * Every report carries the device's report sequence number (`seq`), one counter for all models
 * that grows for the life of the device's data dir. Reports of different models are independent
 * streams, so the control plane keeps the highest applied seq per (device, model)
 * (device_models.last_report_seq) and:
 *  1. accepts a report only when its seq is greater than that pair's. Equal seq = duplicate (QoS1
 *     redelivery, MQTT 3.1.1 §4.3.2), lower seq = stale (arrived late). Both are ignored, so
 *     applying the same batch twice changes nothing (idempotent). A newer report of another model
 *     never makes a report stale: model B's seq 42 applied before model A's seq 41 leaves 41
 *     applicable;
 *  2. within a batch, the newest accepted report per (device, model) is the one applied, and
 *     its seq becomes that pair's floor; devices.last_report_seq keeps the highest accepted seq
 *     of the device (informational, shown in the API);
 *  3. a report about an older revision than the current desired one (revision < desired_revision)
 *     still updates active_version / previous_version — that is the truth about what runs on the
 *     device — but not report_version/report_state/report_revision/failure, which describe the
 *     progress of the current assignment (rule applied in SQL, see reportAppliesToAssignment).
 */
export interface IncomingReport {
  deviceId: string;
  report: UpdateReport;
}

/**
 * Floors of one batch: for every known, live device, the last applied seq of each model that has
 * a device_models row. A device absent from the map is unknown or decommissioned; a model absent
 * from a device's map has no floor yet.
 */
export type ReportFloors = ReadonlyMap<string, ReadonlyMap<string, number>>;

export interface ReportPlan {
  /** Newest accepted report per (device, model), in device/model order; each one's seq is the pair's new floor. */
  apply: IncomingReport[];
  /** New devices.last_report_seq per device that had at least one accepted report. */
  deviceSeq: Map<string, number>;
  accepted: number;
  duplicate: number;
  stale: number;
  unknownDevice: number;
}

/** No floor: every real seq (>= 0, protocol) is above it. */
const NO_FLOOR = -1;

/** Splits a batch into what to apply, by the (device, model) floors read under the devices' row locks. */
export function planReportBatch(batch: readonly IncomingReport[], floors: ReportFloors): ReportPlan {
  const plan: ReportPlan = { apply: [], deviceSeq: new Map(), accepted: 0, duplicate: 0, stale: 0, unknownDevice: 0 };
  const seen = new Map<string, Set<number>>();
  const newest = new Map<string, IncomingReport>();
  for (const item of batch) {
    const models = floors.get(item.deviceId);
    if (models === undefined) {
      plan.unknownDevice++;
      continue;
    }
    const floor = models.get(item.report.model) ?? NO_FLOOR;
    const seq = item.report.seq;
    const key = `${item.deviceId}\u0000${item.report.model}`;
    let seqs = seen.get(key);
    if (!seqs) seen.set(key, (seqs = new Set()));
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
    plan.deviceSeq.set(item.deviceId, Math.max(plan.deviceSeq.get(item.deviceId) ?? NO_FLOOR, seq));
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
