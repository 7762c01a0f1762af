import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { Metadata, Root, TargetFile, Targets } from '@tufjs/models';
import { rootMatchesPin } from '@fleetline/protocol';
import { DataSource, type EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { DEFAULT_TUF_BIN_COUNT } from '../infra/config/config.schema.js';
import { DistributionErrorCode, DistributionException } from './distribution.exception.js';
import { pendingTargets, reviewTargets, type VersionRef } from './offline-targets.js';
import { binNames, binVersionsOf, bitLengthOf, groupByBin, hasLayout, signAllBins, signDelegatingTargets, signNextBin, succinctRolesOf } from './tuf-bins.js';
import { type RoleKey, TOP_LEVEL_ROLES, type TopLevelRole, TufKeyDirectory } from './tuf-keys.js';
import { TufMetadataRepository } from './tuf-metadata.repository.js';
import {
  needsRenewal,
  parseRoot,
  RENEW_BEFORE_MS,
  parseSnapshot,
  parseTargets,
  type SignedMetadata,
  signInitialRoot,
  signNextRoot,
  signNextSnapshot,
  signNextTargets,
  signNextTimestamp,
  type TargetInput,
} from './tuf-signing.js';

/** How long a replica reuses the latest metadata it read; devices poll timestamp.json often. */
const LATEST_CACHE_MS = 2_000;
/**
 * Versioned metadata files kept in memory (oldest dropped first): every bin of a busy rollout plus
 * the current snapshot and targets, within a memory budget (large catalogues have large bins).
 */
const VERSION_CACHE_ENTRIES = 4_200;
const VERSION_CACHE_BYTES = 64 * 1024 * 1024;

export interface TufUrls {
  metadataUrl: string;
  targetsUrl: string;
}

/** Where devices fetch TUF metadata and targets below a control-plane base URL. */
export function tufUrls(baseUrl: string): TufUrls {
  const base = baseUrl.replace(/\/+$/, '');
  return { metadataUrl: `${base}/api/v1/tuf/metadata`, targetsUrl: `${base}/api/v1/tuf/targets` };
}

/**
 * The TUF repository devices verify every model download against (TUF spec 1.0.31). Signed
 * metadata lives in tuf_metadata so that replicas serve one repository; writers serialise on an
 * advisory lock. Keys of online roles live in `{dataDir}/tuf-keys/` (see docs/tuf.md for keeping
 * root and targets offline).
 *
 * The keys of record are the ones the latest root in tuf_metadata trusts: root's version is the
 * key-set version. Every writer reads the latest root under the write lock anyway; before it
 * signs, it compares that version with the one its keys were loaded for and reloads the key
 * directory when another replica published a new root (a rotation), so no replica keeps signing
 * with keys the devices no longer trust (TUF spec §5.3.11, §5.4.4, §5.5.3).
 */
@Injectable()
export class TufRepositoryService implements OnModuleInit {
  private readonly logger = new Logger('Tuf');
  private readonly keyDir: TufKeyDirectory;
  private keys = new Map<TopLevelRole, RoleKey>();
  /** Version of the root `keys` were checked against; another version in the database means reload. */
  private keysRootVersion = 0;
  /** The bins key on this replica (online mode); top-level targets decides whether it is trusted. */
  private binsKey: RoleKey | undefined;
  /** Bit length of the hash-bin delegation this replica moves the repository to at start (TUF_BIN_COUNT). */
  private readonly binBitLength: number;
  private readonly latestCache = new Map<string, { value: SignedMetadata; at: number }>();
  private readonly versionCache = new Map<string, SignedMetadata>();
  private versionCacheBytes = 0;
  private rootHashes: { upTo: number; roots: { sha256: string; json: string }[] } = { upTo: 0, roots: [] };

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly metadata: TufMetadataRepository,
  ) {
    this.keyDir = new TufKeyDirectory(join(config.dataDir, 'tuf-keys'));
    this.binBitLength = bitLengthOf(config.tufBinCount ?? DEFAULT_TUF_BIN_COUNT);
  }

  async onModuleInit(): Promise<void> {
    await this.initialise();
    await this.renewExpiring();
  }

  /**
   * First start: generates keys and signs root v1 plus empty targets/snapshot/timestamp. Later
   * starts (and other replicas): loads the keys and checks that root still trusts them.
   */
  async initialise(now = new Date()): Promise<void> {
    const offline = this.config.tufKeys === 'offline';
    if (offline) await this.refuseOfflineRoleKeys();
    else
      this.logger.warn(
        'TUF_KEYS=online: the root and targets keys are on this server, so whoever takes it over can sign any model for every device; ' +
          'use TUF_KEYS=offline in production (docs/tuf.md)',
      );
    await this.dataSource.transaction(async (manager) => {
      await this.metadata.lockForWrite(manager);
      const root = await this.metadata.latest('root', manager);
      if (root) {
        // A rotation may have published its root and stopped before the staged key was renamed.
        await this.promoteStagedKeys(parseRoot(root.json));
        this.keys = this.trustedKeys(await this.keyDir.load(), root);
        this.keysRootVersion = root.version;
        if (offline) {
          this.requireOnlineKeys(this.keys, root.version);
          await this.refuseOfflineBins(manager);
        }
        return;
      }
      const imported = await this.readImport();
      if (imported.root) {
        await this.importRepository(manager, imported.root, imported.targets, now);
        return;
      }
      if (offline) {
        // No root yet: the operator makes it with `fleetctl keys init`, trusting these two keys.
        this.keys = await this.keyDir.generateMissing(['snapshot', 'timestamp']);
        this.keysRootVersion = 0;
        this.logger.warn('TUF_KEYS=offline and no root yet: devices cannot enroll until the operator runs `fleetctl keys init` (docs/tuf.md)');
        return;
      }
      const keys = await this.keyDir.generateMissing();
      const binsKey = await this.keyDir.generateBinsKeyIfMissing();
      const all = Object.fromEntries(TOP_LEVEL_ROLES.map((r) => [r, keys.get(r)])) as Record<TopLevelRole, RoleKey>;
      const rootV1 = signInitialRoot(all, now);
      const targets = signDelegatingTargets(0, this.binBitLength, binsKey, all.targets, now);
      const { bins, versions } = signAllBins([], this.binBitLength, new Map(), binsKey, now);
      const snapshot = signNextSnapshot(0, targets.version, all.snapshot, now, versions);
      const timestamp = signNextTimestamp(0, snapshot, all.timestamp, now);
      await this.metadata.insert(manager, [rootV1, targets, ...bins, snapshot, timestamp]);
      this.keys = keys;
      this.keysRootVersion = rootV1.version;
      this.logger.log(`created TUF repository (root v1, ${bins.length} hash bins) with new keys in ${this.keyDir.dir}`);
    });
    if (!offline) await this.moveToBins(now);
    this.latestCache.clear();
  }

  /**
   * Start-up step of online mode that brings the repository to the configured bin layout: a
   * repository from before bins (every target in top-level targets), another TUF_BIN_COUNT or a
   * replaced bins key. Signs every bin, a top-level targets delegating to them, snapshot and
   * timestamp, in one transaction under the write lock; once the layout matches it does nothing.
   * Root does not change, so devices keep their pinned root and just see newer versions.
   */
  private async moveToBins(now: Date): Promise<void> {
    const binsKey = await this.binsKeyToSignWith();
    this.binsKey = binsKey;
    if (!binsKey) return;
    const moved = await this.dataSource.transaction(async (manager) => {
      await this.metadata.lockForWrite(manager);
      const latest = await this.metadata.latestAll(manager);
      const keys = await this.keysOfRecord(latest);
      const targetsRow = latest.get('targets');
      const snapshotRow = latest.get('snapshot');
      const timestampRow = latest.get('timestamp');
      if (!targetsRow || !snapshotRow || !timestampRow) return undefined;
      const top = parseTargets(targetsRow.json);
      if (hasLayout(top, this.binBitLength, binsKey)) return undefined;
      const targetsKey = keys.get('targets');
      const snapshotKey = keys.get('snapshot');
      const timestampKey = keys.get('timestamp');
      if (!targetsKey || !snapshotKey || !timestampKey) {
        this.logger.warn('the targets, snapshot or timestamp key is not on this server: the repository stays in its current layout');
        return undefined;
      }
      const files = await this.allTargetFiles(manager, top, snapshotRow);
      const names = binNames(this.binBitLength);
      const { bins, versions } = signAllBins(files, this.binBitLength, await this.metadata.maxVersions(manager, names), binsKey, now);
      const targets = signDelegatingTargets(targetsRow.version, this.binBitLength, binsKey, targetsKey, now);
      const snapshot = signNextSnapshot(snapshotRow.version, targets.version, snapshotKey, now, versions);
      const timestamp = signNextTimestamp(timestampRow.version, snapshot, timestampKey, now);
      await this.metadata.insert(manager, [targets, ...bins, snapshot, timestamp]);
      return { targets: files.length, bins: bins.length, targetsVersion: targets.version };
    });
    if (moved) {
      this.latestCache.clear();
      this.logger.log(`moved ${moved.targets} TUF targets into ${moved.bins} hash bins (targets v${moved.targetsVersion} delegates to them)`);
    }
    const staged = await this.keyDir.loadStagedBinsKey();
    if (staged?.key.keyID === binsKey.key.keyID) {
      await this.keyDir.promoteStagedBinsKey();
      this.logger.log(`the staged bins key ${binsKey.key.keyID} is now in use`);
    }
  }

  /**
   * This replica's bins key if targets delegate to it. After another replica moved the bins to a
   * replacement key, the key files are read again (as keysOfRecord does for root's keys).
   */
  private async delegatedBinsKey(keyIds: readonly string[]): Promise<RoleKey | undefined> {
    if (this.binsKey && keyIds.includes(this.binsKey.key.keyID)) return this.binsKey;
    if (this.config.tufKeys === 'offline') return undefined;
    const found = [await this.keyDir.loadBinsKey(), await this.keyDir.loadStagedBinsKey()].find((k) => k !== undefined && keyIds.includes(k.key.keyID));
    if (found) this.binsKey = found;
    return found;
  }

  /**
   * The bins key of record for this start: a staged replacement (`bins.next.key.pem`) if there
   * is one, else `bins.key.pem`, generated only while no targets delegate to bins yet. A missing
   * or different key once bins exist means this replica does not share the others' key files:
   * moving the bins to its own key would lock every other replica out of signing uploads, so it
   * keeps the layout, serves metadata and answers uploads with `signing-key-offline` (like a
   * replica without the targets key) until it has the key.
   */
  private async binsKeyToSignWith(): Promise<RoleKey | undefined> {
    const staged = await this.keyDir.loadStagedBinsKey();
    if (staged) return staged;
    const targets = await this.metadata.latest('targets');
    const delegated = targets ? succinctRolesOf(parseTargets(targets.json))?.keyIDs : undefined;
    const local = await this.keyDir.loadBinsKey();
    if (!delegated) return local ?? this.keyDir.generateBinsKeyIfMissing();
    if (!local || !delegated.includes(local.key.keyID)) {
      this.logger.warn(
        `targets v${targets!.version} delegates its hash bins to key ${delegated.join(', ')}, which is not ` +
          `${join(this.keyDir.dir, TufKeyDirectory.BINS_KEY_FILE)}: this replica cannot sign uploads. Every replica must use the same ` +
          `tuf-keys directory; to replace the bins key, put the new one in ${TufKeyDirectory.BINS_NEXT_KEY_FILE} (docs/tuf.md)`,
      );
      return undefined;
    }
    return local;
  }

  /** Every target the repository lists: top-level entries plus those of the bins the snapshot points at. */
  private async allTargetFiles(manager: EntityManager, top: Metadata<Targets>, snapshotRow: SignedMetadata): Promise<TargetFile[]> {
    const files = new Map<string, TargetFile>(Object.entries(top.signed.targets));
    if (succinctRolesOf(top)) {
      for (const bin of await this.metadata.atVersions(manager, binVersionsOf(parseSnapshot(snapshotRow.json).signed.meta))) {
        for (const [path, file] of Object.entries(parseTargets(bin.json).signed.targets)) files.set(path, file);
      }
    }
    return [...files.values()];
  }

  /**
   * Bins are signed by an online key delegated from top-level targets; TUF_KEYS=offline promises
   * that nothing on this server can sign what devices install, so it refuses a repository whose
   * targets delegate to bins (fleetctl does not sign bins yet; docs/tuf.md "Hash bins").
   */
  private async refuseOfflineBins(manager: EntityManager): Promise<void> {
    const targets = await this.metadata.latest('targets', manager);
    if (targets && succinctRolesOf(parseTargets(targets.json))) {
      throw new Error(
        `TUF_KEYS=offline but targets v${targets.version} delegates to hash bins signed by an online key; ` +
          'offline signing of bins is not supported yet: keep this repository in TUF_KEYS=online (docs/tuf.md "Hash bins")',
      );
    }
  }

  /** The current root.json text, which devices pin at enrollment. */
  async trustedRoot(): Promise<string> {
    const root = await this.latest('root');
    return root.json;
  }

  /**
   * The root.json text (any version) whose sha256 starts with `pin`, or undefined. A device that
   * enrolls with a token made before a root rotation pins the root the token names and walks
   * forward from it (TUF §5.3). Root rows are immutable, so their hashes are computed once and
   * recomputed only when a newer root appears.
   */
  async rootByPin(pin: string): Promise<string | undefined> {
    const latest = await this.latest('root');
    if (latest.version !== this.rootHashes.upTo) {
      const roots = await this.metadata.allVersions('root');
      this.rootHashes = { upTo: latest.version, roots: roots.map((r) => ({ sha256: createHash('sha256').update(r.json).digest('hex'), json: r.json })) };
    }
    return this.rootHashes.roots.find((r) => rootMatchesPin(r.sha256, pin))?.json;
  }

  /** Metadata and targets URLs below `baseUrl` (default: PUBLIC_URL). */
  urls(baseUrl?: string): TufUrls | undefined {
    const base = baseUrl ?? this.config.http.publicUrl;
    return base ? tufUrls(base) : undefined;
  }

  async latest(role: string): Promise<SignedMetadata> {
    const cached = this.latestCache.get(role);
    if (cached && Date.now() - cached.at < LATEST_CACHE_MS) return cached.value;
    const value = await this.metadata.latest(role);
    if (!value) throw new DistributionException(DistributionErrorCode.MetadataNotFound, `no ${role} metadata${this.notInitialisedHint()}`);
    this.latestCache.set(role, { value, at: Date.now() });
    return value;
  }

  /**
   * A signed version of a role is never rewritten (every change signs a new version), so it is
   * cached for good: during a rollout every device fetches the same `N.snapshot.json` and
   * `N.targets.json`.
   */
  async byVersion(role: string, version: number): Promise<SignedMetadata> {
    const key = `${role}:${version}`;
    const cached = this.versionCache.get(key);
    if (cached) return cached;
    const value = await this.metadata.byVersion(role, version);
    if (!value) throw new DistributionException(DistributionErrorCode.MetadataNotFound, `no ${role} metadata version ${version}`);
    while (
      this.versionCache.size > 0 &&
      (this.versionCache.size >= VERSION_CACHE_ENTRIES || this.versionCacheBytes + value.json.length > VERSION_CACHE_BYTES)
    ) {
      const [oldest, dropped] = this.versionCache.entries().next().value!;
      this.versionCache.delete(oldest);
      this.versionCacheBytes -= dropped.json.length;
    }
    this.versionCache.set(key, value);
    this.versionCacheBytes += value.json.length;
    return value;
  }

  /**
   * Adds targets inside the caller's transaction: when the caller rolls back (or this throws),
   * nothing was published. With hash bins, signs a new version of each bin the targets fall in
   * (grouped first, one signature per bin however many targets it gets), then snapshot and
   * timestamp; top-level targets does not change. A repository without bins gets a new
   * top-level targets instead.
   */
  async publishTargets(manager: EntityManager, added: readonly TargetInput[], now = new Date()): Promise<{ targetsVersion: number }> {
    await this.metadata.lockForWrite(manager);
    const latest = await this.metadata.latestAll(manager);
    const keys = await this.keysOfRecord(latest);
    const top = latest.get('targets');
    const topTargets = top ? parseTargets(top.json) : undefined;
    const roles = topTargets ? succinctRolesOf(topTargets) : undefined;
    if (top && roles) {
      const binsKey = await this.delegatedBinsKey(roles.keyIDs);
      if (!binsKey) {
        throw new DistributionException(
          DistributionErrorCode.SigningKeyOffline,
          `targets v${top.version} delegates its hash bins to key ${roles.keyIDs.join(', ')}, which is not ${join(this.keyDir.dir, TufKeyDirectory.BINS_KEY_FILE)} on this control plane; see docs/tuf.md`,
        );
      }
      const snapshotKey = this.requireKey(keys, 'snapshot');
      const timestampKey = this.requireKey(keys, 'timestamp');
      const previousSnapshot = latest.get('snapshot') as SignedMetadata;
      const versions = binVersionsOf(parseSnapshot(previousSnapshot.json).signed.meta);
      const groups = groupByBin(added, roles.bitLength);
      const touched = new Map([...groups.keys()].map((name) => [name, versions.get(name) ?? 0]));
      const previousBins = new Map((await this.metadata.atVersions(manager, touched)).map((b) => [b.role, parseTargets(b.json)]));
      const bins: SignedMetadata[] = [];
      for (const [name, group] of groups) {
        const previous = previousBins.get(name);
        if (!previous) throw new Error(`snapshot v${previousSnapshot.version} lists no signed ${name} (version ${touched.get(name)})`);
        const bin = signNextBin(name, previous, group, binsKey, now);
        bins.push(bin);
        versions.set(name, bin.version);
      }
      const snapshot = signNextSnapshot(previousSnapshot.version, top.version, snapshotKey, now, versions);
      const timestamp = signNextTimestamp(latest.get('timestamp')?.version ?? 0, snapshot, timestampKey, now);
      await this.metadata.insert(manager, [...bins, snapshot, timestamp]);
      return { targetsVersion: top.version };
    }
    const targetsKey = this.requireKey(keys, 'targets');
    const snapshotKey = this.requireKey(keys, 'snapshot');
    const timestampKey = this.requireKey(keys, 'timestamp');
    const targets = signNextTargets(topTargets, added, targetsKey, now);
    const snapshot = signNextSnapshot(latest.get('snapshot')?.version ?? 0, targets.version, snapshotKey, now);
    const timestamp = signNextTimestamp(latest.get('timestamp')?.version ?? 0, snapshot, timestampKey, now);
    await this.metadata.insert(manager, [targets, snapshot, timestamp]);
    return { targetsVersion: targets.version };
  }

  /** Drops this replica's cached "latest" metadata (after a publish commits). */
  forgetCached(): void {
    this.latestCache.clear();
  }

  /**
   * Re-signs every role whose metadata is close to expiry and whose key is online; a new
   * targets version implies a new snapshot, and a new snapshot a new timestamp (TUF spec §4.4-4.6).
   * Hash bins are renewed like targets (same lifetime), each due bin once. Returns the roles
   * re-signed, `bins` standing for any number of bins.
   */
  async renewExpiring(now = new Date()): Promise<(TopLevelRole | 'bins')[]> {
    const renewed = await this.dataSource.transaction(async (manager) => {
      await this.metadata.lockForWrite(manager);
      const latest = await this.metadata.latestAll(manager);
      const keys = await this.keysOfRecord(latest);
      const out: SignedMetadata[] = [];
      const due = (role: TopLevelRole): boolean => {
        const current = latest.get(role);
        if (!current || !needsRenewal(role, current.expiresAt, now)) return false;
        if (keys.has(role)) return true;
        this.logger.warn(
          `${role} metadata v${current.version} expires at ${current.expiresAt.toISOString()} and its key is offline: sign a new version offline`,
        );
        return false;
      };
      const root = latest.get('root');
      if (root && due('root')) out.push(signNextRoot(parseRoot(root.json), keys.get('root') as RoleKey, now));
      let targetsVersion = latest.get('targets')?.version ?? 0;
      const targets = latest.get('targets');
      if (targets && due('targets')) {
        const next = signNextTargets(parseTargets(targets.json), [], keys.get('targets') as RoleKey, now);
        targetsVersion = next.version;
        out.push(next);
      }
      const binVersions = this.binsToCarry(latest);
      const renewedBins = await this.renewBins(manager, targets, binVersions, now);
      for (const bin of renewedBins) binVersions.set(bin.role, bin.version);
      out.push(...renewedBins);
      let snapshot: SignedMetadata | undefined;
      if ((out.some((m) => m.role === 'targets') || renewedBins.length > 0 || due('snapshot')) && keys.has('snapshot')) {
        snapshot = signNextSnapshot(latest.get('snapshot')?.version ?? 0, targetsVersion, keys.get('snapshot') as RoleKey, now, binVersions);
        out.push(snapshot);
      }
      if ((snapshot || due('timestamp')) && keys.has('timestamp')) {
        const current = snapshot ?? latest.get('snapshot');
        if (current) out.push(signNextTimestamp(latest.get('timestamp')?.version ?? 0, current, keys.get('timestamp') as RoleKey, now));
      }
      await this.metadata.insert(manager, out);
      return [...new Set(out.map((m) => (TOP_LEVEL_ROLES.includes(m.role as TopLevelRole) ? (m.role as TopLevelRole) : 'bins')))];
    });
    if (renewed.length > 0) {
      this.latestCache.clear();
      this.logger.log(`re-signed TUF metadata: ${renewed.join(', ')}`);
    }
    return renewed;
  }

  /** Bins the latest snapshot lists, when the latest targets delegate to bins (none otherwise). */
  private binsToCarry(latest: ReadonlyMap<TopLevelRole, SignedMetadata>, targets?: Metadata<Targets>): Map<string, number> {
    const top = targets ?? (latest.get('targets') ? parseTargets((latest.get('targets') as SignedMetadata).json) : undefined);
    const snapshot = latest.get('snapshot');
    if (!top || !snapshot || !succinctRolesOf(top)) return new Map();
    return binVersionsOf(parseSnapshot(snapshot.json).signed.meta);
  }

  /** New versions of the bins close to expiry (same contents), signed by the bins key. */
  private async renewBins(
    manager: EntityManager,
    targets: SignedMetadata | undefined,
    binVersions: ReadonlyMap<string, number>,
    now: Date,
  ): Promise<SignedMetadata[]> {
    if (!targets || binVersions.size === 0) return [];
    const before = new Date(now.getTime() + RENEW_BEFORE_MS.targets);
    const due = await this.metadata.expiringAt(manager, binVersions, before);
    if (due.length === 0) return [];
    const binsKey = await this.delegatedBinsKey(succinctRolesOf(parseTargets(targets.json))?.keyIDs ?? []);
    if (!binsKey) {
      this.logger.warn(`${due.length} hash bins expire soon and the bins key they are delegated to is not on this server`);
      return [];
    }
    return due.map((bin) => signNextBin(bin.role, parseTargets(bin.json), [], binsKey, now));
  }

  /** Versions, expiries and whether each role's key is online on this replica. */
  async status(): Promise<Record<TopLevelRole, { version: number; expires: string; keyIds: string[]; threshold: number; online: boolean }>> {
    const latest = await this.metadata.latestAll();
    const root = latest.get('root');
    if (!root) throw new DistributionException(DistributionErrorCode.MetadataNotFound, `no root metadata${this.notInitialisedHint()}`);
    const keys = await this.keysOfRecord(latest);
    const roles = parseRoot(root.json).signed.roles;
    const out = {} as Record<TopLevelRole, { version: number; expires: string; keyIds: string[]; threshold: number; online: boolean }>;
    for (const role of TOP_LEVEL_ROLES) {
      const current = latest.get(role);
      out[role] = {
        version: current?.version ?? 0,
        expires: current?.expiresAt.toISOString() ?? '',
        keyIds: roles[role]?.keyIDs ?? [],
        threshold: roles[role]?.threshold ?? 0,
        online: keys.has(role),
      };
    }
    return out;
  }

  /**
   * Publishes root `N+1` signed elsewhere (key rotation, offline root key): it must carry a
   * threshold of signatures from the current root's root keys and from its own (what a client
   * checks, TUF spec §5.3.4-5.3.5), or devices would stop updating. Optionally with a targets
   * version signed by the new targets keys. Snapshot and timestamp are re-signed with the
   * online keys the new root trusts, which must already be in tuf-keys/.
   */
  async replaceRoot(rootJson: unknown, targetsJson?: unknown, now = new Date()): Promise<{ rootVersion: number }> {
    const next = parseUploaded('root', rootJson, parseRoot);
    const result = await this.dataSource.transaction(async (manager) => {
      await this.metadata.lockForWrite(manager);
      const latest = await this.metadata.latestAll(manager);
      const currentRow = latest.get('root');
      if (!currentRow) return this.publishFirstRoot(manager, next, targetsJson, now);
      const current = parseRoot(currentRow.json);
      if (next.signed.version !== current.signed.version + 1) {
        throw new DistributionException(DistributionErrorCode.StaleMetadata, `root version must be ${current.signed.version + 1} (got ${next.signed.version})`);
      }
      if (!next.signed.consistentSnapshot) throw new DistributionException(DistributionErrorCode.InvalidMetadata, 'root must set consistent_snapshot: true');
      if (next.signed.isExpired(now)) throw new DistributionException(DistributionErrorCode.InvalidMetadata, `root expired at ${next.signed.expires}`);
      verifyOrThrow(current, 'root', next, 'the current root keys');
      verifyOrThrow(next, 'root', next, 'its own root keys');
      const keys = await this.keysTrustedBy(next);
      const out: SignedMetadata[] = [toStored('root', next)];
      let targetsVersion = (latest.get('targets') as SignedMetadata).version;
      let binVersions = this.binsToCarry(latest);
      if (targetsJson !== undefined) {
        const targets = parseUploaded('targets', targetsJson, parseTargets);
        binVersions = this.binsToCarry(latest, targets);
        verifyOrThrow(next, 'targets', targets, 'the new root');
        this.checkTargetsVersion(targets, targetsVersion);
        await this.acceptTargets(manager, targets);
        out.push(toStored('targets', targets));
        targetsVersion = targets.signed.version;
      } else if (!verifies(next, 'targets', parseTargets((latest.get('targets') as SignedMetadata).json))) {
        const targetsKey = keys.get('targets');
        if (!targetsKey) {
          throw new DistributionException(
            DistributionErrorCode.InvalidMetadata,
            'the new root no longer trusts the current targets signature: upload a targets version signed with the new targets key along with it',
          );
        }
        const resigned = signNextTargets(parseTargets((latest.get('targets') as SignedMetadata).json), [], targetsKey, now);
        out.push(resigned);
        targetsVersion = resigned.version;
      }
      const snapshotKey = keys.get('snapshot');
      const timestampKey = keys.get('timestamp');
      if (!snapshotKey || !timestampKey) {
        throw new DistributionException(
          DistributionErrorCode.SigningKeyOffline,
          `the new root must trust the snapshot and timestamp keys in ${this.keyDir.dir} (put the new key files there first)`,
        );
      }
      const snapshot = signNextSnapshot((latest.get('snapshot') as SignedMetadata).version, targetsVersion, snapshotKey, now, binVersions);
      out.push(snapshot, signNextTimestamp((latest.get('timestamp') as SignedMetadata).version, snapshot, timestampKey, now));
      await this.metadata.insert(manager, out);
      this.keys = keys;
      this.keysRootVersion = next.signed.version;
      return { rootVersion: next.signed.version };
    });
    this.latestCache.clear();
    await this.promoteStagedKeys(next);
    this.logger.log(`published root v${result.rootVersion}`);
    return result;
  }

  /**
   * Publishes a targets version signed elsewhere (offline targets key). It must be newer than
   * the current one, verify against the current root and still list every uploaded artifact
   * with its digest and length; snapshot and timestamp are re-signed online.
   */
  async replaceTargets(targetsJson: unknown, now = new Date()): Promise<{ targetsVersion: number }> {
    const targets = parseUploaded('targets', targetsJson, parseTargets);
    await this.dataSource.transaction(async (manager) => {
      await this.metadata.lockForWrite(manager);
      const latest = await this.metadata.latestAll(manager);
      const root = parseRoot((latest.get('root') as SignedMetadata).json);
      verifyOrThrow(root, 'targets', targets, 'the current root');
      this.checkTargetsVersion(targets, (latest.get('targets') as SignedMetadata).version);
      if (targets.signed.isExpired(now)) throw new DistributionException(DistributionErrorCode.InvalidMetadata, `targets expired at ${targets.signed.expires}`);
      await this.acceptTargets(manager, targets);
      const keys = await this.keysOfRecord(latest);
      const snapshot = signNextSnapshot(
        (latest.get('snapshot') as SignedMetadata).version,
        targets.signed.version,
        this.requireKey(keys, 'snapshot'),
        now,
        this.binsToCarry(latest, targets),
      );
      const timestamp = signNextTimestamp((latest.get('timestamp') as SignedMetadata).version, snapshot, this.requireKey(keys, 'timestamp'), now);
      await this.metadata.insert(manager, [toStored('targets', targets), snapshot, timestamp]);
    });
    this.latestCache.clear();
    return { targetsVersion: targets.signed.version };
  }

  private checkTargetsVersion(targets: Metadata<Targets>, currentVersion: number): void {
    if (targets.signed.version <= currentVersion) {
      throw new DistributionException(
        DistributionErrorCode.StaleMetadata,
        `targets version must be greater than ${currentVersion} (got ${targets.signed.version})`,
      );
    }
  }

  /**
   * Devices must keep being able to verify every version already published, and every entry must
   * be an artifact stored here. Versions awaiting a signature that the targets list completely
   * become distributable in the caller's transaction.
   */
  private async acceptTargets(manager: EntityManager, targets: Metadata<Targets>): Promise<VersionRef[]> {
    const review = reviewTargets(
      targets,
      await this.metadata.publishedArtifacts(manager),
      await this.metadata.awaitingArtifacts(manager),
      await this.delegatedTargets(manager, targets),
    );
    if (review.missing.length > 0) {
      throw new DistributionException(DistributionErrorCode.InvalidMetadata, `targets metadata must list every uploaded artifact with its sha256 and length`, {
        missing: review.missing.slice(0, 100),
      });
    }
    if (review.unknown.length > 0) {
      throw new DistributionException(
        DistributionErrorCode.InvalidMetadata,
        'targets metadata lists targets this control plane has no artifact for (or with another sha256 or length)',
        { unknown: review.unknown.slice(0, 100) },
      );
    }
    await this.metadata.markPublished(manager, review.published);
    if (review.published.length > 0) this.logger.log(`signed targets publish ${review.published.map((v) => `${v.model}@${v.version}`).join(', ')}`);
    return review.published;
  }

  /**
   * Entries of the bins that uploaded targets delegate to. Targets signed elsewhere may keep the
   * current hash-bin delegation (the bins stay as they are) or have none; a new delegation would
   * need every bin signed along with it, which this endpoint does not take.
   */
  private async delegatedTargets(manager: EntityManager, targets: Metadata<Targets>): Promise<Record<string, TargetFile>> {
    const roles = succinctRolesOf(targets);
    if (!roles) return {};
    const latest = await this.metadata.latestAll(manager);
    const current = latest.get('targets');
    const currentRoles = current ? succinctRolesOf(parseTargets(current.json)) : undefined;
    if (!currentRoles?.equals(roles)) {
      throw new DistributionException(
        DistributionErrorCode.InvalidMetadata,
        'targets metadata may keep the current hash-bin delegation or have none, not delegate to other bins or keys (docs/tuf.md "Hash bins")',
      );
    }
    const files: Record<string, TargetFile> = {};
    for (const bin of await this.metadata.atVersions(manager, this.binsToCarry(latest))) Object.assign(files, parseTargets(bin.json).signed.targets);
    return files;
  }

  /**
   * What the operator signs with `fleetctl targets sign`: the current signed targets (their
   * baseline, which they verify against their root) and the next version listing every artifact
   * awaiting a signature, unsigned. `pending` is null when nothing waits.
   */
  async pendingTargets(
    now = new Date(),
  ): Promise<{ rootVersion: number; targets: Record<string, unknown>; pending: Record<string, unknown> | null; versions: VersionRef[] }> {
    const latest = await this.metadata.latestAll();
    const root = latest.get('root');
    const targets = latest.get('targets');
    if (!root || !targets) throw new DistributionException(DistributionErrorCode.MetadataNotFound, `no targets metadata${this.notInitialisedHint()}`);
    const awaiting = await this.metadata.awaitingArtifacts();
    const current = parseTargets(targets.json);
    if (awaiting.length === 0) return { rootVersion: root.version, targets: current.toJSON(), pending: null, versions: [] };
    const { metadata, versions } = pendingTargets(current, awaiting, now);
    return { rootVersion: root.version, targets: current.toJSON(), pending: metadata.toJSON(), versions };
  }

  /** Public keys of the snapshot and timestamp keys this server signs with (what `fleetctl keys init` puts in root). */
  async onlineKeys(): Promise<Record<'snapshot' | 'timestamp', { keyId: string; key: Record<string, unknown> }>> {
    const local = await this.keyDir.load();
    const snapshot = local.get('snapshot');
    const timestamp = local.get('timestamp');
    if (!snapshot || !timestamp) {
      throw new DistributionException(DistributionErrorCode.SigningKeyOffline, `the snapshot and timestamp keys are not in ${this.keyDir.dir}`);
    }
    return {
      snapshot: { keyId: snapshot.key.keyID, key: snapshot.key.toJSON() },
      timestamp: { keyId: timestamp.key.keyID, key: timestamp.key.toJSON() },
    };
  }

  /**
   * A new key for an online role (snapshot or timestamp), generated here and kept staged until a
   * root that trusts it is published (`fleetctl keys rotate`). Asking again returns the same key.
   */
  async stageOnlineKey(role: 'snapshot' | 'timestamp'): Promise<{ role: string; key: Record<string, unknown>; keyId: string }> {
    const key = await this.keyDir.stageNext(role);
    return { role, key: key.key.toJSON(), keyId: key.key.keyID };
  }

  /**
   * Root v1 made by the operator (TUF_KEYS=offline, `fleetctl keys init`): self-signed, with a
   * targets v1 signed by its targets key, trusting this server's snapshot and timestamp keys.
   */
  private async publishFirstRoot(manager: EntityManager, root: Metadata<Root>, targetsJson: unknown, now: Date): Promise<{ rootVersion: number }> {
    if (root.signed.version !== 1)
      throw new DistributionException(DistributionErrorCode.StaleMetadata, `the first root must be version 1 (got ${root.signed.version})`);
    if (!root.signed.consistentSnapshot) throw new DistributionException(DistributionErrorCode.InvalidMetadata, 'root must set consistent_snapshot: true');
    if (root.signed.isExpired(now)) throw new DistributionException(DistributionErrorCode.InvalidMetadata, `root expired at ${root.signed.expires}`);
    verifyOrThrow(root, 'root', root, 'its own root keys');
    if (targetsJson === undefined)
      throw new DistributionException(DistributionErrorCode.InvalidMetadata, 'the first root needs a signed targets version along with it');
    const targets = parseUploaded('targets', targetsJson, parseTargets);
    verifyOrThrow(root, 'targets', targets, 'the new root');
    await this.acceptTargets(manager, targets);
    const keys = await this.keysTrustedBy(root);
    this.requireOnlineKeys(keys, root.signed.version);
    if (this.config.tufKeys === 'offline' && (keys.has('root') || keys.has('targets'))) {
      throw new DistributionException(
        DistributionErrorCode.InvalidMetadata,
        'TUF_KEYS=offline: root must not trust root or targets keys stored on this server',
      );
    }
    const snapshot = signNextSnapshot(0, targets.signed.version, keys.get('snapshot')!, now);
    const timestamp = signNextTimestamp(0, snapshot, keys.get('timestamp')!, now);
    await this.metadata.insert(manager, [toStored('root', root), toStored('targets', targets), snapshot, timestamp]);
    this.keys = keys;
    this.keysRootVersion = root.signed.version;
    return { rootVersion: root.signed.version };
  }

  private requireOnlineKeys(keys: ReadonlyMap<TopLevelRole, RoleKey>, rootVersion: number): void {
    const absent = (['snapshot', 'timestamp'] as const).filter((role) => !keys.has(role));
    if (absent.length > 0) {
      throw new DistributionException(
        DistributionErrorCode.SigningKeyOffline,
        `root v${rootVersion} must trust the ${absent.join(' and ')} key(s) in ${this.keyDir.dir} (GET /api/v1/tuf/admin/online-keys)`,
      );
    }
  }

  /** TUF_KEYS=offline promises that this server cannot sign root or targets: refuse to start with their keys. */
  private async refuseOfflineRoleKeys(): Promise<void> {
    const local = await this.keyDir.load();
    const present = (['root', 'targets'] as const).filter((role) => local.has(role)).map((role) => join(this.keyDir.dir, TufKeyDirectory.fileName(role)));
    if (present.length > 0) {
      throw new Error(
        `TUF_KEYS=offline but ${present.join(' and ')} exist on this server: move them to the operator's key directory ` +
          '(fleetctl --key-dir) and delete them here, or run with TUF_KEYS=online; see docs/tuf.md',
      );
    }
  }

  /** Renames staged rotation keys that `root` trusts to their role's key file. */
  private async promoteStagedKeys(root: Metadata<Root>): Promise<void> {
    for (const [role, key] of await this.keyDir.loadNext()) {
      if (!root.signed.roles[role]?.keyIDs.includes(key.key.keyID)) continue;
      await this.keyDir.promoteNext(role);
      this.logger.log(`the staged ${role} key ${key.key.keyID} is now in use (root v${root.signed.version} trusts it)`);
    }
  }

  private notInitialisedHint(): string {
    return this.config.tufKeys === 'offline' ? ' (TUF_KEYS=offline: the operator creates root with `fleetctl keys init`)' : '';
  }

  /** `{dataDir}/tuf-keys/root.json` (and targets.json) prepared offline, imported on first start. */
  private async readImport(): Promise<{ root?: string; targets?: string }> {
    const read = async (name: string): Promise<string | undefined> => {
      try {
        return await readFile(join(this.keyDir.dir, name), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    return { root: await read('root.json'), targets: await read('targets.json') };
  }

  /** First start with a root made offline: only the keys present locally are online. */
  private async importRepository(manager: EntityManager, rootText: string, targetsText: string | undefined, now: Date): Promise<void> {
    const root = parseRoot(rootText);
    verifyOrThrow(root, 'root', root, 'its own root keys');
    if (!root.signed.consistentSnapshot) throw new Error('imported root.json must set consistent_snapshot: true');
    const keys = this.trustedKeys(await this.keyDir.load(), toStored('root', root));
    const snapshotKey = keys.get('snapshot');
    const timestampKey = keys.get('timestamp');
    if (!snapshotKey || !timestampKey) throw new Error(`imported root.json: the snapshot and timestamp keys must be in ${this.keyDir.dir}`);
    let targets: SignedMetadata;
    if (targetsText) {
      const parsed = parseTargets(targetsText);
      verifyOrThrow(root, 'targets', parsed, 'the imported root');
      targets = toStored('targets', parsed);
    } else {
      const targetsKey = keys.get('targets');
      if (!targetsKey) throw new Error(`imported root.json: put a signed targets.json next to it or the targets key in ${this.keyDir.dir}`);
      targets = signNextTargets(undefined, [], targetsKey, now);
    }
    const snapshot = signNextSnapshot(0, targets.version, snapshotKey, now);
    const timestamp = signNextTimestamp(0, snapshot, timestampKey, now);
    // Only the imported version is stored: devices pin exactly this root.
    await this.metadata.insert(manager, [toStored('root', root), targets, snapshot, timestamp]);
    this.keys = keys;
    this.keysRootVersion = root.signed.version;
    this.logger.log(`imported TUF root v${root.signed.version}; online roles: ${[...keys.keys()].join(', ') || 'none'}`);
  }

  /**
   * Local keys the given root trusts for their role, the staged rotation key where root trusts
   * that one instead; other key files are ignored with a warning.
   */
  private async keysTrustedBy(root: Metadata<Root>): Promise<Map<TopLevelRole, RoleKey>> {
    const current = await this.keyDir.load();
    const staged = await this.keyDir.loadNext();
    const usable = new Map<TopLevelRole, RoleKey>();
    for (const role of TOP_LEVEL_ROLES) {
      const trusted = root.signed.roles[role]?.keyIDs ?? [];
      const pick = [current.get(role), staged.get(role)].find((k) => k !== undefined && trusted.includes(k.key.keyID));
      if (pick) usable.set(role, pick);
      const key = current.get(role);
      // Replaced by the staged key root now trusts: promoteStagedKeys renames it over this one.
      if (key && pick !== key && pick !== staged.get(role))
        this.logger.warn(
          `ignoring the local ${role} key ${key.key.keyID}: root v${root.signed.version} does not trust it (remove ${TufKeyDirectory.fileName(role)})`,
        );
    }
    return usable;
  }

  /**
   * The online keys the latest root trusts. `latest` is what the caller read (under the write
   * lock when it is about to sign). Costs nothing while the root version is the one the keys were
   * loaded for; after a root published by any replica, the key directory is read again and only
   * the keys the new root trusts are kept (the others are ignored with a warning: refusing to
   * sign beats publishing metadata every device rejects).
   */
  private async keysOfRecord(latest: ReadonlyMap<TopLevelRole, SignedMetadata>): Promise<Map<TopLevelRole, RoleKey>> {
    const root = latest.get('root');
    if (!root || root.version === this.keysRootVersion) return this.keys;
    const keys = await this.keysTrustedBy(parseRoot(root.json));
    this.logger.log(
      `keys reloaded from ${this.keyDir.dir} for root v${root.version} (were for v${this.keysRootVersion}); online roles: ${[...keys.keys()].join(', ') || 'none'}`,
    );
    this.keys = keys;
    this.keysRootVersion = root.version;
    return keys;
  }

  private requireKey(keys: ReadonlyMap<TopLevelRole, RoleKey>, role: TopLevelRole): RoleKey {
    const key = keys.get(role);
    if (!key) {
      throw new DistributionException(
        DistributionErrorCode.SigningKeyOffline,
        `the TUF ${role} key is not available on this control plane (${join(this.keyDir.dir, TufKeyDirectory.fileName(role))}); see docs/tuf.md`,
      );
    }
    return key;
  }

  /**
   * Keeps the local keys root trusts for their role. A local key root does not list (rotated
   * away, or another replica's key) is a deployment error: signing with it would publish
   * metadata every device rejects.
   */
  private trustedKeys(local: Map<TopLevelRole, RoleKey>, root: SignedMetadata): Map<TopLevelRole, RoleKey> {
    const roles = parseRoot(root.json).signed.roles;
    for (const [role, key] of local) {
      if (!roles[role]?.keyIDs.includes(key.key.keyID)) {
        throw new Error(
          `TUF ${role} key ${key.key.keyID} in ${this.keyDir.dir} is not trusted by root v${root.version}. ` +
            'Every replica must use the same tuf-keys directory (shared volume or the same key files); see docs/tuf.md',
        );
      }
    }
    return local;
  }
}

function verifies(delegator: Metadata<Root>, role: TopLevelRole, delegate: Metadata<Root | Targets>): boolean {
  try {
    delegator.verifyDelegate(role, delegate);
    return true;
  } catch {
    return false;
  }
}

function verifyOrThrow(delegator: Metadata<Root>, role: TopLevelRole, delegate: Metadata<Root | Targets>, by: string): void {
  if (!verifies(delegator, role, delegate)) {
    throw new DistributionException(
      DistributionErrorCode.InvalidMetadata,
      `${role} metadata v${delegate.signed.version} is not signed by a threshold of ${by}`,
    );
  }
}

function parseUploaded<T>(role: TopLevelRole, json: unknown, parse: (text: string) => T): T {
  try {
    return parse(typeof json === 'string' ? json : JSON.stringify(json));
  } catch (err) {
    throw new DistributionException(DistributionErrorCode.InvalidMetadata, `not valid ${role} metadata: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Stores uploaded metadata as its canonical re-serialisation (signatures cover `signed` only). */
function toStored(role: TopLevelRole, metadata: Metadata<Root | Targets>): SignedMetadata {
  return { role, version: metadata.signed.version, json: JSON.stringify(metadata.toJSON()), expiresAt: new Date(metadata.signed.expires) };
}
