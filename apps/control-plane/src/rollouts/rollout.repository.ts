import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { ArtifactRef } from '@fleetline/protocol';
import type { GateResult } from '../telemetry/gates/health-gate.contract.js';
import { COMPATIBILITY_KEY_SQL, type CompatibilityProjection, incompatibilityReason } from './planning/compatibility.js';
import { storedSpec } from './planning/rollout-definition.js';
import { type ConflictResolution, RELEASED_REASON_PREFIX, releasedReason, type RolloutConflict, resolveConflicts } from './planning/conflicts.js';
import { reportStateMapping } from './planning/device-state.js';
import { nothingLeft } from './planning/nothing-left.js';
import { SqlParams } from '../infra/database/sql-params.js';
import { affectedRows, rowsOf } from '../infra/database/sql-values.js';
import { type ResolvedRanges, targetWhereSql, versionsSatisfying } from './planning/target-filter.js';
import type { StateCounts } from './planning/wave-conditions.js';
import { waveBoundaries, waveLowOrdinals, waveSizes } from './planning/wave-math.js';
import { HOLDING_ROLLOUT_STATES, type RolloutOperation, sqlStates, targetOf, transitionOf } from './lifecycle/rollout-transitions.js';
import { RolloutErrorCode, RolloutException } from './rollout.exception.js';
import type { RolloutAction, RolloutDeviceState, RolloutSpec, RolloutState, TargetSelector, WaveSpec } from './rollout.types.js';

export interface RolloutRow {
  id: string;
  model: string;
  version: string;
  state: RolloutState;
  stateReason: string | null;
  action: RolloutAction;
  priority: number;
  spec: RolloutSpec;
  baselineVersion: string | null;
  targetCount: number;
  skippedCount: number;
  currentWave: number;
  startAt: Date;
  endAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  installRequestedAt: Date | null;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface WaveRow {
  idx: number;
  size: number;
  spec: WaveSpec;
  startedAt: Date | null;
  successSince: Date | null;
  finishedAt: Date | null;
  acceptedFailures: number;
  gatesOverridden: boolean;
  gateResults: GateResult[] | null;
  gatesEvaluatedAt: Date | null;
}

export interface RolloutEventRow {
  id: string;
  at: Date;
  type: string;
  wave: number | null;
  message: string;
  data: Record<string, unknown>;
}

export interface RolloutDeviceRow {
  deviceId: string;
  ordinal: number;
  wave: number | null;
  state: RolloutDeviceState;
  reason: string | null;
  failureCode: string | null;
  revision: number | null;
  attempts: number;
  notifiedAt: Date | null;
  updatedAt: Date;
  /** The build of the version the device was sent, then the one it reported taking (null: none yet). */
  variant: string | null;
}

export interface NewEvent {
  type: string;
  wave?: number | null;
  message: string;
  data?: Record<string, unknown>;
}

export interface CreateRolloutInput {
  id: string;
  model: string;
  version: string;
  action: RolloutAction;
  priority: number;
  spec: RolloutSpec;
  startAt: Date;
  endAt: Date | null;
  createdBy: string | null;
  artifacts: ArtifactRef[];
}

export interface CreateRolloutResult {
  targetCount: number;
  skippedCount: number;
  unknownDeviceIds: string[];
  unknownDeviceCount: number;
  released: RolloutConflict[];
  waveSizes: number[];
}

/** SQL for "this rollout still holds its devices" (conflicts are judged against these). */
const HOLDING_ROLLOUT_SQL = `(r.state IN ${sqlStates(HOLDING_ROLLOUT_STATES)})`;
const EXPLICIT_ID_CHUNK = 10_000;
/** Unknown explicit ids listed by value (response, event); all are counted. */
const UNKNOWN_IDS_SHOWN = 100;
/** Skip reasons recorded in the event of a rollout that ended with nobody left (the most frequent). */
const NOTHING_LEFT_REASONS = 20;
/** A rollout ($1) has members and every one is skipped (two index probes). */
const NOTHING_LEFT_SQL = `EXISTS (SELECT 1 FROM rollout_devices WHERE rollout_id = $1)
                          AND NOT EXISTS (SELECT 1 FROM rollout_devices WHERE rollout_id = $1 AND state <> 'skipped')`;

type Raw = Record<string, unknown>;

/**
 * Join that attaches the incompatibility reason ($3 keys, $4 reasons) to each device; a
 * constant NULL reason when nothing is incompatible (saves building the key for every row).
 */
function incompatibleJoin(incompatible: { keys: string[] }): string {
  return incompatible.keys.length === 0
    ? `CROSS JOIN (SELECT NULL::text AS reason WHERE $3::text[] IS NOT NULL AND $4::text[] IS NOT NULL) AS inc`
    : `LEFT JOIN unnest($3::text[], $4::text[]) AS inc(k, reason) ON inc.k = ${COMPATIBILITY_KEY_SQL}`;
}

function toRollout(r: Raw): RolloutRow {
  return {
    id: r['id'] as string,
    model: r['model'] as string,
    version: r['version'] as string,
    state: r['state'] as RolloutState,
    stateReason: (r['state_reason'] as string | null) ?? null,
    action: r['action'] as RolloutAction,
    priority: Number(r['priority']),
    spec: r['spec'] as RolloutSpec,
    baselineVersion: (r['baseline_version'] as string | null) ?? null,
    targetCount: Number(r['target_count']),
    skippedCount: Number(r['skipped_count']),
    currentWave: Number(r['current_wave']),
    startAt: new Date(r['start_at'] as string),
    endAt: dateOrNull(r['end_at']),
    startedAt: dateOrNull(r['started_at']),
    finishedAt: dateOrNull(r['finished_at']),
    installRequestedAt: dateOrNull(r['install_requested_at']),
    createdBy: (r['created_by'] as string | null) ?? null,
    createdAt: new Date(r['created_at'] as string),
    updatedAt: new Date(r['updated_at'] as string),
  };
}

function toWave(r: Raw): WaveRow {
  return {
    idx: Number(r['idx']),
    size: Number(r['size']),
    spec: r['spec'] as WaveSpec,
    startedAt: dateOrNull(r['started_at']),
    successSince: dateOrNull(r['success_since']),
    finishedAt: dateOrNull(r['finished_at']),
    acceptedFailures: Number(r['accepted_failures']),
    gatesOverridden: Boolean(r['gates_overridden']),
    gateResults: (r['gate_results'] as GateResult[] | null) ?? null,
    gatesEvaluatedAt: dateOrNull(r['gates_evaluated_at']),
  };
}

function toEvent(r: Raw): RolloutEventRow {
  return {
    id: String(r['id']),
    at: new Date(r['at'] as string),
    type: r['type'] as string,
    wave: r['wave'] === null ? null : Number(r['wave']),
    message: r['message'] as string,
    data: (r['data'] as Record<string, unknown>) ?? {},
  };
}

function toDevice(r: Raw): RolloutDeviceRow {
  return {
    deviceId: r['device_id'] as string,
    ordinal: Number(r['ordinal']),
    wave: r['wave'] === null ? null : Number(r['wave']),
    state: r['state'] as RolloutDeviceState,
    reason: (r['reason'] as string | null) ?? null,
    failureCode: (r['failure_code'] as string | null) ?? null,
    revision: r['revision'] === null ? null : Number(r['revision']),
    attempts: Number(r['attempts']),
    notifiedAt: dateOrNull(r['notified_at']),
    updatedAt: new Date(r['updated_at'] as string),
    variant: (r['variant'] as string | null) ?? null,
  };
}

function dateOrNull(v: unknown): Date | null {
  return v === null || v === undefined ? null : new Date(v as string);
}

/** A stored device report, as the rollout rows need it. */
export interface RolloutReport {
  deviceId: string;
  model: string;
  revision: number;
  /** The protocol state the device reported. */
  state: string;
  failureCode: string | null;
  failureMessage: string | null;
}

/**
 * All SQL of the rollouts feature. Every statement is set-based: membership is materialised
 * with one INSERT ... SELECT, device states are synchronised from device_models with one
 * UPDATE ... FROM per rollout, batches are claimed with one UPDATE ... RETURNING.
 */
@Injectable()
export class RolloutRepository {
  constructor(private readonly dataSource: DataSource) {}

  // ---------------------------------------------------------------- creation

  /**
   * Creates a rollout with its waves and its materialised membership in ONE transaction. The
   * per-model advisory transaction lock serialises creations of the same model so two
   * overlapping rollouts cannot both pass the conflict check.
   */
  async create(input: CreateRolloutInput): Promise<CreateRolloutResult> {
    return this.dataSource.transaction(async (em) => {
      await em.query(`SELECT pg_advisory_xact_lock(hashtext('fleetline.rollout-model:' || $1))`, [input.model]);
      await this.insertRollout(em, input, 'scheduled');
      const explicitIdsTable = input.spec.target.deviceIds ? await this.stageExplicitIds(em, input.spec.target.deviceIds) : undefined;
      const result = await this.materialise(em, input, explicitIdsTable);
      await this.insertEvents(em, input.id, [
        {
          type: 'created',
          message: `rollout of ${input.model} ${input.version} created for ${result.targetCount} devices (${result.skippedCount} skipped)`,
          data: result.data,
        },
      ]);
      return result;
    });
  }

  /**
   * Stores a rollout whose membership the engine materialises later (state `preparing`): the row
   * and its raw explicit id list as ONE array value, so the request costs the same for 100 ids
   * or 1,000,000. prepare() does the rest.
   */
  async createPreparing(input: CreateRolloutInput, deviceIds: readonly string[]): Promise<{ rollout: RolloutRow; event: RolloutEventRow }> {
    // The answer is built from what this transaction wrote: a read after the commit could wait
    // behind the preparation itself on a single-connection database (PGlite).
    return this.dataSource.transaction(async (em) => {
      await this.insertRollout(em, input, 'preparing');
      await em.query(`INSERT INTO rollout_target_ids (rollout_id, device_ids) VALUES ($1, $2::text[])`, [input.id, deviceIds]);
      const event = rowsOf(
        await em.query(`INSERT INTO rollout_events (rollout_id, type, message, data) VALUES ($1, 'created', $2, $3::jsonb) RETURNING *`, [
          input.id,
          `rollout of ${input.model} ${input.version} created for ${deviceIds.length} explicit device ids; the engine prepares its membership`,
          JSON.stringify({ deviceIdCount: deviceIds.length }),
        ]),
      )[0];
      const rollout = rowsOf(await em.query(`SELECT * FROM rollouts WHERE id = $1`, [input.id]))[0];
      if (!rollout || !event) throw new Error(`rollout ${input.id} vanished while it was created`);
      return { rollout: toRollout(rollout), event: toEvent(event) };
    });
  }

  /** Rollouts waiting for preparation, oldest first (rollouts_preparing_idx). */
  async listPreparing(limit: number): Promise<RolloutRow[]> {
    const rows = rowsOf(await this.dataSource.query(`SELECT * FROM rollouts WHERE state = 'preparing' ORDER BY created_at, id LIMIT $1`, [limit]));
    return rows.map(toRollout);
  }

  /**
   * Materialises a preparing rollout's membership exactly as create() does, and moves it to
   * `scheduled` (op `prepared`), in ONE transaction that first locks the rollout row and
   * re-checks `preparing`: a replica that dies half-way leaves nothing behind (the next driver
   * starts over), and a rollout is never prepared twice nor after it was cancelled.
   * Returns undefined when the rollout is no longer preparing. Throws RolloutException
   * (conflict, invalid definition) for what an inline creation would have refused.
   */
  async prepare(rolloutId: string, artifacts: ArtifactRef[]): Promise<CreateRolloutResult | undefined> {
    return this.dataSource.transaction(async (em) => {
      const row = rowsOf(await em.query(`SELECT * FROM rollouts WHERE id = $1 AND state = 'preparing' FOR UPDATE`, [rolloutId]))[0];
      if (!row) return undefined;
      const r = toRollout(row);
      const table = `rollout_ids_${randomBytes(6).toString('hex')}`;
      await em.query(`CREATE TEMP TABLE ${table} (device_id text COLLATE "C" PRIMARY KEY) ON COMMIT DROP`);
      const present = rowsOf(await em.query(`SELECT 1 FROM rollout_target_ids WHERE rollout_id = $1`, [rolloutId])).length > 0;
      // Without its list the stored target would select the whole fleet: refuse rather than guess.
      if (!present) throw new RolloutException(RolloutErrorCode.InvalidDefinition, 'the explicit device id list of this rollout is missing');
      await em.query(`INSERT INTO ${table} (device_id) SELECT DISTINCT unnest(device_ids) FROM rollout_target_ids WHERE rollout_id = $1`, [rolloutId]);
      await em.query(`ANALYZE ${table}`);
      await em.query(`SELECT pg_advisory_xact_lock(hashtext('fleetline.rollout-model:' || $1))`, [r.model]);
      const result = await this.materialise(em, { id: r.id, model: r.model, version: r.version, priority: r.priority, spec: r.spec, artifacts }, table);
      await em.query(`UPDATE rollouts SET state = $2, state_reason = NULL, updated_at = now() WHERE id = $1`, [rolloutId, targetOf('prepared')]);
      await em.query(`DELETE FROM rollout_target_ids WHERE rollout_id = $1`, [rolloutId]);
      const events: NewEvent[] = [
        {
          type: 'prepared',
          message: `membership prepared: ${result.targetCount} devices (${result.skippedCount} skipped, ${result.unknownDeviceCount} unknown ids)`,
          data: result.data,
        },
      ];
      if (result.unknownDeviceCount > 0) {
        events.push({
          type: 'unknown-devices',
          message: `${result.unknownDeviceCount} of the explicit device ids are unknown or decommissioned and are not members`,
          data: { count: result.unknownDeviceCount, deviceIds: result.unknownDeviceIds },
        });
      }
      await this.insertEvents(em, rolloutId, events);
      return result;
    });
  }

  /** Drops the staged id lists of rollouts that are no longer preparing (cancelled meanwhile). */
  async dropStaleTargetIds(): Promise<number> {
    return affectedRows(
      await this.dataSource.query(
        `DELETE FROM rollout_target_ids t USING rollouts r WHERE r.id = t.rollout_id AND r.state <> 'preparing' RETURNING t.rollout_id`,
      ),
    );
  }

  private async insertRollout(em: EntityManager, input: CreateRolloutInput, state: RolloutState): Promise<void> {
    await em.query(
      `INSERT INTO rollouts (id, model, version, state, action, priority, spec, start_at, end_at, created_by)
       VALUES ($1, $2, $3, $10, $4, $5, $6::jsonb, $7, $8, $9)`,
      [
        input.id,
        input.model,
        input.version,
        input.action,
        input.priority,
        JSON.stringify(storedSpec(input.spec)),
        input.startAt,
        input.endAt,
        input.createdBy,
        state,
      ],
    );
  }

  /**
   * The membership of a new rollout, set-based: target selection (explicit ids from the staged
   * temp table), compatibility, wave slicing, waves, conflict check and release, totals. The
   * caller holds the model's advisory lock and records the event with `data`.
   */
  private async materialise(
    em: EntityManager,
    input: Pick<CreateRolloutInput, 'id' | 'model' | 'version' | 'priority' | 'spec' | 'artifacts'>,
    explicitIdsTable: string | undefined,
  ): Promise<CreateRolloutResult & { data: Record<string, unknown> }> {
    const ranges = await this.resolveRanges(em, input.spec.target);
    let unknownDeviceIds: string[] = [];
    let unknownDeviceCount = 0;
    if (explicitIdsTable) {
      ranges.explicitIdsTable = explicitIdsTable;
      const unknown = rowsOf(
        await em.query(
          `SELECT t.device_id FROM ${explicitIdsTable} t
           WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = t.device_id AND d.decommissioned_at IS NULL) ORDER BY t.device_id`,
        ),
      );
      unknownDeviceCount = unknown.length;
      unknownDeviceIds = unknown.slice(0, UNKNOWN_IDS_SHOWN).map((r) => r['device_id'] as string);
    }
    const { incompatible, counts } = await this.judgeCompatibility(em, input.spec.target, input.model, ranges, input.artifacts, null);
    const boundaries = waveBoundaries(input.spec.waves, counts.eligible);
    const sizes = waveSizes(boundaries);
    const params = new SqlParams([input.id, input.model, incompatible.keys, incompatible.reasons]);
    const where = targetWhereSql(input.spec.target, input.model, ranges, params);
    const lows = params.add(waveLowOrdinals(boundaries));
    const last = params.add(input.spec.coverAll ? Number.MAX_SAFE_INTEGER : (boundaries[boundaries.length - 1] ?? 0));
    await em.query(
      `INSERT INTO rollout_devices (rollout_id, device_id, model, ordinal, wave, state, reason, from_version)
         SELECT $1::uuid, t.id, $2, t.rn, CASE WHEN t.reason IS NULL THEN width_bucket(t.rn::int, ${lows}::int[]) - 1 END,
                CASE WHEN t.reason IS NULL THEN 'pending' ELSE 'skipped' END, t.reason, t.active_version
         FROM (
           SELECT d.id, inc.reason, dm.active_version,
                  row_number() OVER (ORDER BY (inc.reason IS NOT NULL), md5($1::text || ':' || d.id) COLLATE "C", d.id) AS rn
           FROM devices d
           LEFT JOIN device_models dm ON dm.device_id = d.id AND dm.model = $2
           ${incompatibleJoin(incompatible)}
           WHERE ${where}
         ) t
         WHERE t.reason IS NOT NULL OR t.rn <= ${last}`,
      params.values,
    );
    for (let i = 0; i < input.spec.waves.length; i++) {
      await em.query(`INSERT INTO rollout_waves (rollout_id, idx, size, spec) VALUES ($1, $2, $3, $4::jsonb)`, [
        input.id,
        i,
        sizes[i] ?? 0,
        JSON.stringify(input.spec.waves[i]),
      ]);
    }
    const resolution = await this.checkConflicts(em, input.id, input.model, input.priority);
    if (resolution.kind === 'blocked') {
      throw new RolloutException(
        RolloutErrorCode.Conflict,
        `devices of this target are already in active rollouts of ${input.model} with the same or a higher priority: ${resolution.conflicts.map((c) => c.rolloutId).join(', ')}`,
        { conflictingRolloutIds: resolution.conflicts.map((c) => c.rolloutId), conflicts: resolution.conflicts },
      );
    }
    if (resolution.kind === 'release') await this.releaseTo(em, input.id, input.model, input.priority, resolution.conflicts);
    const totals = rowsOf(
      await em.query(
        `SELECT count(*) FILTER (WHERE state <> 'skipped')::int AS members, count(*) FILTER (WHERE state = 'skipped')::int AS skipped FROM rollout_devices WHERE rollout_id = $1`,
        [input.id],
      ),
    )[0];
    const baseline = rowsOf(
      await em.query(
        `SELECT from_version FROM rollout_devices WHERE rollout_id = $1 AND state <> 'skipped' AND from_version IS NOT NULL AND from_version <> $2
           GROUP BY from_version ORDER BY count(*) DESC, from_version LIMIT 1`,
        [input.id, input.version],
      ),
    )[0];
    const targetCount = Number(totals?.['members'] ?? 0);
    const skippedCount = Number(totals?.['skipped'] ?? 0);
    await em.query(`UPDATE rollouts SET target_count = $2, skipped_count = $3, baseline_version = $4 WHERE id = $1`, [
      input.id,
      targetCount,
      skippedCount,
      (baseline?.['from_version'] as string | undefined) ?? null,
    ]);
    const data = {
      targetCount,
      skippedCount,
      incompatibleCount: counts.skipped,
      waveSizes: sizes,
      unknownDeviceCount,
      unknownDeviceIds,
      released: resolution.kind === 'release' ? resolution.conflicts : [],
    };
    return {
      targetCount,
      skippedCount,
      unknownDeviceIds,
      unknownDeviceCount,
      released: resolution.kind === 'release' ? resolution.conflicts : [],
      waveSizes: sizes,
      data,
    };
  }

  /** Explicit id lists of any size go into a transaction-scoped temp table in chunks (unnest), never one row per statement. */
  private async stageExplicitIds(em: EntityManager, ids: readonly string[]): Promise<string> {
    const table = `rollout_ids_${randomBytes(6).toString('hex')}`;
    await em.query(`CREATE TEMP TABLE ${table} (device_id text COLLATE "C" PRIMARY KEY) ON COMMIT DROP`);
    for (let i = 0; i < ids.length; i += EXPLICIT_ID_CHUNK) {
      await em.query(`INSERT INTO ${table} (device_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, [ids.slice(i, i + EXPLICIT_ID_CHUNK)]);
    }
    await em.query(`ANALYZE ${table}`);
    return table;
  }

  private async resolveRanges(em: EntityManager, target: TargetSelector): Promise<ResolvedRanges> {
    const ranges: ResolvedRanges = {};
    if (target.inventory?.agentVersion !== undefined) {
      const rows = rowsOf(await em.query(`SELECT DISTINCT agent_version AS v FROM devices WHERE agent_version IS NOT NULL AND decommissioned_at IS NULL`));
      ranges.agentVersions = versionsSatisfying(
        rows.map((r) => r['v'] as string),
        target.inventory.agentVersion,
      );
    }
    if (target.inventory?.runtime?.range !== undefined) {
      const rows = rowsOf(
        await em.query(
          `SELECT DISTINCT d.inventory->'runtimes'->>$1 AS v FROM devices d WHERE d.decommissioned_at IS NULL AND d.inventory->'runtimes'->>$1 IS NOT NULL`,
          [target.inventory.runtime.name],
        ),
      );
      ranges.runtimeVersions = versionsSatisfying(
        rows.map((r) => r['v'] as string),
        target.inventory.runtime.range,
      );
    }
    return ranges;
  }

  /**
   * One grouped scan of the target by inventory projection: which projections are incompatible
   * (with the reason) and how many devices are eligible. Devices without an inventory are sent:
   * their agent checks compatibility itself and reports `incompatible`.
   */
  private async judgeCompatibility(
    em: EntityManager,
    target: TargetSelector,
    model: string,
    ranges: ResolvedRanges,
    artifacts: readonly ArtifactRef[],
    joiningRolloutId: string | null,
  ): Promise<{ incompatible: { keys: string[]; reasons: string[] }; counts: { eligible: number; skipped: number } }> {
    const params = new SqlParams();
    const where = targetWhereSql(target, model, ranges, params);
    const rows = rowsOf(
      await em.query(
        `SELECT CASE WHEN d.inventory IS NULL THEN NULL ELSE ${COMPATIBILITY_KEY_SQL} END AS k, count(*)::int AS n
         FROM devices d WHERE ${where}${
           joiningRolloutId
             ? ` AND NOT EXISTS (SELECT 1 FROM rollout_devices x WHERE x.rollout_id = ${params.add(joiningRolloutId)} AND x.device_id = d.id)`
             : ''
         }
         GROUP BY 1`,
        params.values,
      ),
    );
    const keys: string[] = [];
    const reasons: string[] = [];
    let eligible = 0;
    let skipped = 0;
    for (const row of rows) {
      const key = row['k'] as string | null;
      const n = Number(row['n']);
      const reason = key === null ? undefined : incompatibilityReason(artifacts, JSON.parse(key) as CompatibilityProjection);
      if (reason === undefined) {
        eligible += n;
      } else {
        skipped += n;
        keys.push(key!);
        reasons.push(reason);
      }
    }
    return { incompatible: { keys, reasons }, counts: { eligible, skipped } };
  }

  private async checkConflicts(em: EntityManager, rolloutId: string, model: string, priority: number): Promise<ConflictResolution> {
    const rows = rowsOf(
      await em.query(
        `SELECT o.rollout_id, r.priority, count(*)::int AS devices
         FROM rollout_devices n
         JOIN rollout_devices o ON o.device_id = n.device_id AND o.model = n.model AND o.rollout_id <> n.rollout_id AND o.state <> 'skipped'
         JOIN rollouts r ON r.id = o.rollout_id AND ${HOLDING_ROLLOUT_SQL}
         WHERE n.rollout_id = $1 AND n.model = $2 AND n.state <> 'skipped'
         GROUP BY o.rollout_id, r.priority ORDER BY o.rollout_id`,
        [rolloutId, model],
      ),
    );
    return resolveConflicts(
      priority,
      rows.map((r) => ({ rolloutId: r['rollout_id'] as string, priority: Number(r['priority']), devices: Number(r['devices']) })),
    );
  }

  private async releaseTo(em: EntityManager, rolloutId: string, model: string, priority: number, conflicts: readonly RolloutConflict[]): Promise<void> {
    await em.query(
      `UPDATE rollout_devices o SET state = 'skipped', reason = $3, updated_at = now()
       FROM rollout_devices n
       WHERE n.rollout_id = $1 AND n.state <> 'skipped' AND o.device_id = n.device_id AND o.model = $2
         AND o.rollout_id = ANY($4::uuid[]) AND o.state <> 'skipped'`,
      [rolloutId, model, releasedReason(rolloutId, priority), conflicts.map((c) => c.rolloutId)],
    );
    for (const c of conflicts) {
      await this.insertEvents(em, c.rolloutId, [
        {
          type: 'devices-released',
          message: `${c.devices} devices released to higher-priority rollout ${rolloutId}`,
          data: { to: rolloutId, priority, devices: c.devices },
        },
      ]);
    }
  }

  // ---------------------------------------------------------------- dynamic membership

  /**
   * Adds devices that started matching a dynamic rollout's target to its last wave (one
   * INSERT ... SELECT). Devices held by another active rollout of the model are left alone.
   */
  async joinNewDevices(rollout: RolloutRow, artifacts: readonly ArtifactRef[]): Promise<{ joined: number; skipped: number }> {
    return this.dataSource.transaction(async (em) => {
      await em.query(`SELECT pg_advisory_xact_lock(hashtext('fleetline.rollout-model:' || $1))`, [rollout.model]);
      const ranges = await this.resolveRanges(em, rollout.spec.target);
      const { incompatible } = await this.judgeCompatibility(em, rollout.spec.target, rollout.model, ranges, artifacts, rollout.id);
      const params = new SqlParams([rollout.id, rollout.model, incompatible.keys, incompatible.reasons]);
      const where = targetWhereSql(rollout.spec.target, rollout.model, ranges, params);
      const lastWave = params.add(rollout.spec.waves.length - 1);
      const rows = rowsOf(
        await em.query(
          `INSERT INTO rollout_devices (rollout_id, device_id, model, ordinal, wave, state, reason, from_version)
           SELECT $1::uuid, t.id, $2, t.rn + (SELECT coalesce(max(ordinal), 0) FROM rollout_devices WHERE rollout_id = $1),
                  CASE WHEN t.reason IS NULL THEN ${lastWave}::int END,
                  CASE WHEN t.reason IS NULL THEN 'pending' ELSE 'skipped' END, t.reason, t.active_version
           FROM (
             SELECT d.id, inc.reason, dm.active_version,
                    row_number() OVER (ORDER BY md5($1::text || ':' || d.id) COLLATE "C", d.id) AS rn
             FROM devices d
             LEFT JOIN device_models dm ON dm.device_id = d.id AND dm.model = $2
             ${incompatibleJoin(incompatible)}
             WHERE ${where}
               AND NOT EXISTS (SELECT 1 FROM rollout_devices x WHERE x.rollout_id = $1 AND x.device_id = d.id)
               AND NOT EXISTS (SELECT 1 FROM rollout_devices o JOIN rollouts r ON r.id = o.rollout_id
                               WHERE o.device_id = d.id AND o.model = $2 AND o.state <> 'skipped' AND o.rollout_id <> $1 AND ${HOLDING_ROLLOUT_SQL})
           ) t
           RETURNING state`,
          params.values,
        ),
      );
      const joined = rows.filter((r) => r['state'] === 'pending').length;
      const skipped = rows.length - joined;
      if (rows.length > 0) {
        await em.query(`UPDATE rollouts SET target_count = target_count + $2, skipped_count = skipped_count + $3, updated_at = now() WHERE id = $1`, [
          rollout.id,
          joined,
          skipped,
        ]);
        await em.query(`UPDATE rollout_waves SET size = size + $3 WHERE rollout_id = $1 AND idx = $2`, [rollout.id, rollout.spec.waves.length - 1, joined]);
        await this.insertEvents(em, rollout.id, [
          {
            type: 'devices-joined',
            wave: rollout.spec.waves.length - 1,
            message: `${joined} newly matching devices joined the last wave (${skipped} skipped as incompatible)`,
            data: { joined, skipped },
          },
        ]);
      }
      return { joined, skipped };
    });
  }

  // ---------------------------------------------------------------- reads

  async find(id: string): Promise<RolloutRow | undefined> {
    const row = rowsOf(await this.dataSource.query(`SELECT * FROM rollouts WHERE id = $1`, [id]))[0];
    return row ? toRollout(row) : undefined;
  }

  async get(id: string): Promise<RolloutRow> {
    const rollout = await this.find(id);
    if (!rollout) throw new RolloutException(RolloutErrorCode.NotFound, `rollout ${id} not found`);
    return rollout;
  }

  /** Rollouts the engine has work for: active ones, and aborted ones still rolling back. */
  /**
   * Rollouts the engine has work for: the active ones, and finished ones (completed at their
   * success threshold, or cancelled) whose told devices are still installing. Those keep
   * following reports until each device finishes or times out, so a rollout's device table
   * ends up saying what every device did rather than freezing at `notified`.
   */
  async listDriven(): Promise<RolloutRow[]> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT * FROM rollouts r
         WHERE r.state IN ${sqlStates(HOLDING_ROLLOUT_STATES)}
            OR (r.state IN ('completed', 'cancelled')
                AND EXISTS (SELECT 1 FROM rollout_devices rd WHERE rd.rollout_id = r.id AND rd.state IN ('notified', 'downloading', 'installing')))
         ORDER BY created_at, id`,
      ),
    );
    return rows.map(toRollout);
  }

  async list(filter: { state?: RolloutState; model?: string; limit: number; after?: [string, string] }): Promise<RolloutRow[]> {
    const params = new SqlParams();
    const clauses: string[] = [];
    if (filter.state) clauses.push(`state = ${params.add(filter.state)}`);
    if (filter.model) clauses.push(`model = ${params.add(filter.model)}`);
    if (filter.after) clauses.push(`(created_at, id) < (${params.add(filter.after[0])}::timestamptz, ${params.add(filter.after[1])}::uuid)`);
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    const rows = rowsOf(
      await this.dataSource.query(`SELECT * FROM rollouts ${where} ORDER BY created_at DESC, id DESC LIMIT ${params.add(filter.limit)}`, params.values),
    );
    return rows.map(toRollout);
  }

  async waves(rolloutId: string): Promise<WaveRow[]> {
    const rows = rowsOf(await this.dataSource.query(`SELECT * FROM rollout_waves WHERE rollout_id = $1 ORDER BY idx`, [rolloutId]));
    return rows.map(toWave);
  }

  /** Device counts per wave and state (index-only over rollout_devices_wave_idx). `wave` narrows to one wave. */
  async waveCounts(rolloutId: string, wave?: number): Promise<Map<number | null, StateCounts>> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT wave, state, count(*)::int AS n FROM rollout_devices WHERE rollout_id = $1 ${wave === undefined ? '' : 'AND wave = $2'} GROUP BY wave, state`,
        wave === undefined ? [rolloutId] : [rolloutId, wave],
      ),
    );
    const out = new Map<number | null, StateCounts>();
    for (const r of rows) {
      const w = r['wave'] === null ? null : Number(r['wave']);
      const counts = out.get(w) ?? {};
      counts[r['state'] as RolloutDeviceState] = Number(r['n']);
      out.set(w, counts);
    }
    return out;
  }

  async events(rolloutId: string, limit: number, beforeId?: string): Promise<RolloutEventRow[]> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT * FROM rollout_events WHERE rollout_id = $1 ${beforeId ? 'AND id < $3::bigint' : ''} ORDER BY id DESC LIMIT $2`,
        beforeId ? [rolloutId, limit, beforeId] : [rolloutId, limit],
      ),
    );
    return rows.map(toEvent);
  }

  async devices(rolloutId: string, filter: { state?: RolloutDeviceState; wave?: number; limit: number; afterOrdinal?: number }): Promise<RolloutDeviceRow[]> {
    const params = new SqlParams([rolloutId]);
    const clauses = ['rollout_id = $1'];
    if (filter.state) clauses.push(`state = ${params.add(filter.state)}`);
    if (filter.wave !== undefined) clauses.push(`wave = ${params.add(filter.wave)}`);
    if (filter.afterOrdinal !== undefined) clauses.push(`ordinal > ${params.add(filter.afterOrdinal)}`);
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT * FROM rollout_devices WHERE ${clauses.join(' AND ')} ORDER BY ordinal LIMIT ${params.add(filter.limit)}`,
        params.values,
      ),
    );
    return rows.map(toDevice);
  }

  // ---------------------------------------------------------------- engine bookkeeping

  async insertEvents(em: EntityManager | undefined, rolloutId: string, events: readonly NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await (em ?? this.dataSource).query(
      `INSERT INTO rollout_events (rollout_id, type, wave, message, data)
       SELECT $1, e.type, e.wave, e.message, e.data::jsonb FROM unnest($2::text[], $3::int[], $4::text[], $5::text[]) AS e(type, wave, message, data)`,
      [rolloutId, events.map((e) => e.type), events.map((e) => e.wave ?? null), events.map((e) => e.message), events.map((e) => JSON.stringify(e.data ?? {}))],
    );
  }

  /**
   * Compare-and-set state change with its event in one transaction, along the edge `op` of
   * ROLLOUT_TRANSITIONS (its `from` states; `to` one of its targets). Returns false when the
   * rollout was not in one of them (another replica, or an operator, got there first).
   */
  async transition(
    rolloutId: string,
    op: RolloutOperation,
    reason: string | null,
    event: NewEvent,
    extra: { finished?: boolean; started?: boolean; to?: RolloutState } = {},
  ): Promise<boolean> {
    const to = targetOf(op, extra.to);
    return this.dataSource.transaction(async (em) => {
      const rows = rowsOf(
        await em.query(
          `UPDATE rollouts SET state = $2, state_reason = $3, updated_at = now()
             ${extra.finished ? ', finished_at = now()' : ''} ${extra.started ? ', started_at = coalesce(started_at, now())' : ''}
           WHERE id = $1 AND state = ANY($4::text[]) RETURNING id`,
          [rolloutId, to, reason, [...transitionOf(op).from]],
        ),
      );
      if (rows.length === 0) return false;
      await this.insertEvents(em, rolloutId, [event]);
      return true;
    });
  }

  /**
   * Starts wave `to` if the rollout is still at wave `from` (compare-and-set): a wave can never
   * start twice, even when two replicas or a crash and a restart race.
   */
  async startWave(rolloutId: string, from: number, to: number, event: NewEvent, op: 'start' | 'next-wave' | 'advance'): Promise<boolean> {
    return this.dataSource.transaction(async (em) => {
      const rows = rowsOf(
        await em.query(
          `UPDATE rollouts SET current_wave = $3, state = $5, state_reason = NULL, started_at = coalesce(started_at, now()), updated_at = now()
           WHERE id = $1 AND current_wave = $2 AND state = ANY($4::text[]) RETURNING id`,
          [rolloutId, from, to, [...transitionOf(op).from], targetOf(op)],
        ),
      );
      if (rows.length === 0) return false;
      if (from >= 0)
        await em.query(`UPDATE rollout_waves SET finished_at = coalesce(finished_at, now()) WHERE rollout_id = $1 AND idx = $2`, [rolloutId, from]);
      await em.query(`UPDATE rollout_waves SET started_at = now() WHERE rollout_id = $1 AND idx = $2`, [rolloutId, to]);
      await this.insertEvents(em, rolloutId, [event]);
      return true;
    });
  }

  async completeLastWave(rolloutId: string, wave: number): Promise<void> {
    await this.dataSource.query(`UPDATE rollout_waves SET finished_at = coalesce(finished_at, now()) WHERE rollout_id = $1 AND idx = $2`, [rolloutId, wave]);
  }

  async markSuccessSince(rolloutId: string, wave: number): Promise<Date> {
    const row = rowsOf(
      await this.dataSource.query(
        `UPDATE rollout_waves SET success_since = coalesce(success_since, now()) WHERE rollout_id = $1 AND idx = $2 RETURNING success_since`,
        [rolloutId, wave],
      ),
    )[0];
    return new Date((row?.['success_since'] as string | undefined) ?? Date.now());
  }

  async saveGateResults(rolloutId: string, wave: number, results: GateResult[]): Promise<void> {
    await this.dataSource.query(`UPDATE rollout_waves SET gate_results = $3::jsonb, gates_evaluated_at = now() WHERE rollout_id = $1 AND idx = $2`, [
      rolloutId,
      wave,
      JSON.stringify(results),
    ]);
  }

  /** Resume after a pause: failures seen so far in the current wave are accepted, gates of a gate-paused wave are overridden. */
  async acceptCurrentWave(rolloutId: string, wave: number, acceptedFailures: number, overrideGates: boolean): Promise<void> {
    await this.dataSource.query(
      `UPDATE rollout_waves SET accepted_failures = $3, gates_overridden = gates_overridden OR $4 WHERE rollout_id = $1 AND idx = $2`,
      [rolloutId, wave, acceptedFailures, overrideGates],
    );
  }

  /**
   * Applies device reports (device_models, written by report ingestion) to the rollout's
   * devices in one UPDATE ... FROM. Only reports about the revision this rollout assigned count.
   * Returns the devices that changed, with their new state and failure code.
   */
  async syncReports(rolloutId: string, model: string): Promise<{ state: RolloutDeviceState; failureCode: string | null }[]> {
    const mapping = reportStateMapping();
    const rows = rowsOf(
      await this.dataSource.query(
        `UPDATE rollout_devices rd
         SET state = m.device_state,
             failure_code = CASE WHEN m.device_state = 'failed' THEN coalesce(dm.failure_code, 'internal') WHEN m.device_state = 'skipped' THEN dm.failure_code ELSE NULL END,
             reason = CASE WHEN m.device_state IN ('failed', 'skipped')
                           THEN left(coalesce(dm.failure_code, dm.report_state) || coalesce(': ' || dm.failure_message, ''), 500)
                           ELSE rd.reason END,
             variant = coalesce(dm.variant, rd.variant),
             updated_at = now()
         FROM device_models dm
         JOIN unnest($3::text[], $4::text[]) AS m(protocol_state, device_state) ON m.protocol_state = dm.report_state
         WHERE rd.rollout_id = $1 AND rd.state IN ('notified', 'downloading', 'downloaded', 'installing')
           AND dm.device_id = rd.device_id AND dm.model = $2 AND dm.report_revision = rd.revision
           AND m.device_state <> rd.state
         RETURNING rd.state, rd.failure_code`,
        [rolloutId, model, mapping.protocol, mapping.device],
      ),
    );
    return rows.map((r) => ({ state: r['state'] as RolloutDeviceState, failureCode: (r['failure_code'] as string | null) ?? null }));
  }

  /**
   * Applies just-stored reports to the rollout rows of the revisions they are about: one
   * UPDATE ... FROM unnest over the reports, through rollout_devices_device_idx, so its cost is
   * the number of reports, not the number of devices in flight (syncReports is the sweep that
   * repairs anything this missed). Only in-flight rows move, so a late or reordered report never
   * reopens a terminal one.
   */
  async applyReports(reports: readonly RolloutReport[]): Promise<{ rolloutId: string; wave: number; state: RolloutDeviceState; failureCode: string | null }[]> {
    if (reports.length === 0) return [];
    const mapping = reportStateMapping();
    const rows = rowsOf(
      await this.dataSource.query(
        `UPDATE rollout_devices rd
         SET state = m.device_state,
             failure_code = CASE WHEN m.device_state = 'failed' THEN coalesce(u.failure_code, 'internal') WHEN m.device_state = 'skipped' THEN u.failure_code ELSE NULL END,
             reason = CASE WHEN m.device_state IN ('failed', 'skipped')
                           THEN left(coalesce(u.failure_code, u.protocol_state) || coalesce(': ' || u.failure_message, ''), 500)
                           ELSE rd.reason END,
             updated_at = now()
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                AS u(device_id, model, revision, protocol_state, failure_code, failure_message)
         JOIN unnest($7::text[], $8::text[]) AS m(protocol_state, device_state) ON m.protocol_state = u.protocol_state
         WHERE rd.device_id = u.device_id AND rd.model = u.model AND rd.revision = u.revision
           AND rd.state IN ('notified', 'downloading', 'downloaded', 'installing')
           AND m.device_state <> rd.state
         RETURNING rd.rollout_id, rd.wave, rd.state, rd.failure_code`,
        [
          reports.map((r) => r.deviceId),
          reports.map((r) => r.model),
          reports.map((r) => r.revision),
          reports.map((r) => r.state),
          reports.map((r) => r.failureCode),
          reports.map((r) => r.failureMessage),
          mapping.protocol,
          mapping.device,
        ],
      ),
    );
    return rows.map((r) => ({
      rolloutId: r['rollout_id'] as string,
      wave: Number(r['wave']),
      state: r['state'] as RolloutDeviceState,
      failureCode: (r['failure_code'] as string | null) ?? null,
    }));
  }

  /** Failed devices whose failure is transient and that have retries left go back to pending after a backoff. */
  async scheduleRetries(rolloutId: string, transientCodes: readonly string[], maxRetries: number, backoffSeconds: number): Promise<number> {
    if (maxRetries <= 0) return 0;
    return affectedRows(
      await this.dataSource.query(
        `UPDATE rollout_devices
         SET state = 'pending', reason = 'retry ' || attempts || '/' || $3 || ' after ' || failure_code,
             not_before = now() + make_interval(secs => least($4::float8 * power(2, greatest(attempts - 1, 0)), 86400)), updated_at = now()
         WHERE rollout_id = $1 AND state = 'failed' AND failure_code = ANY($2::text[]) AND attempts <= $3
         RETURNING device_id`,
        [rolloutId, [...transientCodes], maxRetries, backoffSeconds],
      ),
    );
  }

  /** Devices told longer than timeoutSeconds ago that have not finished are timed out (a failure). */
  async timeOut(rolloutId: string, timeoutSeconds: number): Promise<number> {
    return affectedRows(
      await this.dataSource.query(
        `UPDATE rollout_devices SET state = 'timed-out', reason = 'no terminal report within ' || $2 || ' s', updated_at = now()
         WHERE rollout_id = $1 AND state IN ('notified', 'downloading', 'installing') AND notified_at < now() - make_interval(secs => $2::float8)
         RETURNING device_id`,
        [rolloutId, timeoutSeconds],
      ),
    );
  }

  /** Devices that were told and have not finished (for maxInFlight). */
  async inFlightCount(rolloutId: string): Promise<number> {
    const row = rowsOf(
      await this.dataSource.query(
        `SELECT count(*)::int AS n FROM rollout_devices WHERE rollout_id = $1 AND state IN ('notified', 'downloading', 'installing')`,
        [rolloutId],
      ),
    )[0];
    return Number(row?.['n'] ?? 0);
  }

  /**
   * For the ramp: devices notified at least once (its position), and notices of the last
   * `windowSeconds` (retries and install commands included; a row stamped again counts once).
   */
  async rampCounts(rolloutId: string, windowSeconds: number): Promise<{ notifiedEver: number; recentNotices: number }> {
    const row = rowsOf(
      await this.dataSource.query(
        `SELECT count(*)::int AS ever, count(*) FILTER (WHERE notified_at > now() - make_interval(secs => $2::float8))::int AS recent
         FROM rollout_devices WHERE rollout_id = $1 AND notified_at IS NOT NULL`,
        [rolloutId, windowSeconds],
      ),
    )[0];
    return { notifiedEver: Number(row?.['ever'] ?? 0), recentNotices: Number(row?.['recent'] ?? 0) };
  }

  /**
   * Claims up to `limit` pending devices of the started waves and marks them notified, in one
   * transaction that first locks the rollout row and re-checks that it is running at wave
   * `currentWave`. Only after this commits does the engine publish, so a crash in between
   * leaves `notified` rows that the next driver re-publishes, and no device outside the
   * started waves is ever told.
   */
  async claimBatch(rolloutId: string, currentWave: number, limit: number): Promise<{ deviceId: string; ordinal: number }[]> {
    return this.dataSource.transaction(async (em) => {
      const rollout = rowsOf(await em.query(`SELECT state, current_wave FROM rollouts WHERE id = $1 FOR UPDATE`, [rolloutId]))[0];
      if (!rollout || rollout['state'] !== 'running' || Number(rollout['current_wave']) !== currentWave) return [];
      const rows = rowsOf(
        await em.query(
          // MATERIALIZED: the batch is chosen exactly once. As a plain subquery in UPDATE ... FROM the
          // planner may rescan it, and each rescan could pick further rows (more than LIMIT).
          `WITH c AS MATERIALIZED (
             SELECT device_id FROM rollout_devices
             WHERE rollout_id = $1 AND state = 'pending' AND wave <= $2 AND (not_before IS NULL OR not_before <= now())
             ORDER BY wave, ordinal LIMIT $3
             FOR UPDATE
           )
           UPDATE rollout_devices rd SET state = 'notified', notified_at = now(), attempts = rd.attempts + 1, revision = NULL, not_before = NULL, updated_at = now()
           FROM c
           WHERE rd.rollout_id = $1 AND rd.device_id = c.device_id
           RETURNING rd.device_id, rd.ordinal`,
          [rolloutId, currentWave, limit],
        ),
      );
      return rows.map((r) => ({ deviceId: r['device_id'] as string, ordinal: Number(r['ordinal']) })).sort((a, b) => a.ordinal - b.ordinal);
    });
  }

  /** Notified devices after `afterOrdinal` (re-publication after a restart, install command of download-only). */
  async devicesInStates(
    rolloutId: string,
    states: readonly RolloutDeviceState[],
    afterOrdinal: number,
    limit: number,
  ): Promise<{ deviceId: string; ordinal: number }[]> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT device_id, ordinal FROM rollout_devices WHERE rollout_id = $1 AND state = ANY($2::text[]) AND ordinal > $3 ORDER BY ordinal LIMIT $4`,
        [rolloutId, [...states], afterOrdinal, limit],
      ),
    );
    return rows.map((r) => ({ deviceId: r['device_id'] as string, ordinal: Number(r['ordinal']) }));
  }

  /** Stores the desired revisions (and builds) the devices feature assigned (one UPDATE over unnest). */
  async recordRevisions(
    rolloutId: string,
    assigned: readonly { deviceId: string; revision: number; variant: string | null }[],
    newState?: RolloutDeviceState,
  ): Promise<void> {
    if (assigned.length === 0) return;
    const params: unknown[] = [rolloutId, assigned.map((a) => a.deviceId), assigned.map((a) => a.revision), assigned.map((a) => a.variant)];
    await this.dataSource.query(
      `UPDATE rollout_devices rd SET revision = a.revision, variant = a.variant, updated_at = now() ${newState ? ', state = $5, notified_at = now()' : ''}
       FROM unnest($2::text[], $3::bigint[], $4::text[]) AS a(device_id, revision, variant)
       WHERE rd.rollout_id = $1 AND rd.device_id = a.device_id`,
      newState ? [...params, newState] : params,
    );
  }

  async markSkipped(rolloutId: string, deviceIds: readonly string[], reason: string): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.dataSource.query(
      `UPDATE rollout_devices SET state = 'skipped', reason = $3, updated_at = now() WHERE rollout_id = $1 AND device_id = ANY($2::text[])`,
      [rolloutId, [...deviceIds], reason],
    );
  }

  /** Operator retry: failed and timed-out devices go back to pending with a fresh retry budget. */
  async resetFailed(rolloutId: string): Promise<number> {
    return affectedRows(
      await this.dataSource.query(
        `UPDATE rollout_devices SET state = 'pending', reason = 'retry requested', failure_code = NULL, attempts = 0, not_before = NULL, updated_at = now()
         WHERE rollout_id = $1 AND state IN ('failed', 'timed-out') RETURNING device_id`,
        [rolloutId],
      ),
    );
  }

  async requestInstall(rolloutId: string): Promise<boolean> {
    const rows = rowsOf(
      await this.dataSource.query(
        `UPDATE rollouts SET action = 'install', install_requested_at = now(), updated_at = now()
         WHERE id = $1 AND action = 'download-only' AND state = ANY($2::text[]) RETURNING id`,
        [rolloutId, [...transitionOf('install').from]],
      ),
    );
    return rows.length > 0;
  }

  /**
   * Next batch to revert on abort: devices that were told about the version, with the version
   * to put back. A device that committed gets device_models.previous_version; one that had not
   * switched yet keeps what it runs (active_version). NULL means it ran nothing: unassign.
   */
  async rollbackBatch(rolloutId: string, version: string, model: string, limit: number): Promise<{ deviceId: string; target: string | null }[]> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT rd.device_id,
                CASE WHEN dm.active_version = $2 THEN coalesce(dm.previous_version, CASE WHEN rd.from_version <> $2 THEN rd.from_version END)
                     ELSE coalesce(dm.active_version, rd.from_version) END AS target
         FROM rollout_devices rd
         LEFT JOIN device_models dm ON dm.device_id = rd.device_id AND dm.model = $3
         WHERE rd.rollout_id = $1 AND rd.state IN ('notified', 'downloading', 'downloaded', 'installing', 'committed', 'failed', 'timed-out')
         ORDER BY rd.ordinal LIMIT $4`,
        [rolloutId, version, model, limit],
      ),
    );
    return rows.map((r) => ({ deviceId: r['device_id'] as string, target: (r['target'] as string | null) ?? null }));
  }

  async markRolledBack(rolloutId: string, deviceIds: readonly string[], reasons: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.dataSource.query(
      `UPDATE rollout_devices rd SET state = 'rolled-back', reason = u.reason, updated_at = now()
       FROM unnest($2::text[], $3::text[]) AS u(device_id, reason) WHERE rd.rollout_id = $1 AND rd.device_id = u.device_id`,
      [rolloutId, [...deviceIds], [...reasons]],
    );
  }

  async countInState(rolloutId: string, state: RolloutDeviceState): Promise<number> {
    const row = rowsOf(
      await this.dataSource.query(`SELECT count(*)::int AS n FROM rollout_devices WHERE rollout_id = $1 AND state = $2`, [rolloutId, state]),
    )[0];
    return Number(row?.['n'] ?? 0);
  }

  /** Members exist and every one is `skipped` (two index probes, cheap enough for every tick). */
  async hasNothingLeft(rolloutId: string): Promise<boolean> {
    const probe = rowsOf(await this.dataSource.query(`SELECT ${NOTHING_LEFT_SQL} AS empty`, [rolloutId]))[0];
    return probe?.['empty'] === true;
  }

  /**
   * Ends an active rollout that has members but none left to act on (every one `skipped`: taken by
   * higher-priority rollouts, or fitting no build) as `cancelled`, with the reasons in its event.
   * Called once hasNothingLeft said so; re-checks under the rollout's row lock, in one transaction
   * with its event. Returns true when it ended it.
   */
  async cancelNothingLeft(rolloutId: string): Promise<boolean> {
    const from = transitionOf('nothing-left').from;
    return this.dataSource.transaction(async (em) => {
      const locked = rowsOf(
        await em.query(`SELECT id FROM rollouts WHERE id = $1 AND state = ANY($2::text[]) AND ${NOTHING_LEFT_SQL} FOR UPDATE`, [rolloutId, [...from]]),
      );
      if (locked.length === 0) return false;
      const totals = rowsOf(
        await em.query(
          `SELECT count(*)::int AS members, count(*) FILTER (WHERE starts_with(reason, $2))::int AS released FROM rollout_devices WHERE rollout_id = $1`,
          [rolloutId, RELEASED_REASON_PREFIX],
        ),
      )[0];
      const reasons = rowsOf(
        await em.query(
          `SELECT reason, count(*)::int AS n FROM rollout_devices WHERE rollout_id = $1 GROUP BY reason ORDER BY n DESC, reason LIMIT ${NOTHING_LEFT_REASONS}`,
          [rolloutId],
        ),
      ).map((r) => ({ reason: (r['reason'] as string | null) ?? null, devices: Number(r['n']) }));
      const outcome = nothingLeft(Number(totals?.['members'] ?? 0), Number(totals?.['released'] ?? 0), reasons);
      await em.query(`UPDATE rollouts SET state = $3, state_reason = $2, finished_at = now(), updated_at = now() WHERE id = $1`, [
        rolloutId,
        outcome.stateReason,
        targetOf('nothing-left'),
      ]);
      await this.insertEvents(em, rolloutId, [outcome.event]);
      return true;
    });
  }

  async finishAbort(rolloutId: string, rolledBack: number): Promise<void> {
    const to = targetOf('finish-rollback', rolledBack > 0 ? 'rolled-back' : 'aborted');
    await this.dataSource.transaction(async (em) => {
      await em.query(`UPDATE rollouts SET state = $2, finished_at = now(), updated_at = now() WHERE id = $1 AND state = ANY($3::text[])`, [
        rolloutId,
        to,
        [...transitionOf('finish-rollback').from],
      ]);
      await this.insertEvents(em, rolloutId, [
        {
          type: 'rollback-finished',
          message: rolledBack > 0 ? `${rolledBack} devices reverted to their previous version` : 'nothing to revert',
          data: { rolledBack, state: to },
        },
      ]);
    });
  }
}
