import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Key, Metadata, MetaFile, Root, Signature, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';

interface RoleKey {
  key: Key;
  privateKey: KeyObject;
}

function newKey(): RoleKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  const hex = Buffer.from(jwk.x!, 'base64url').toString('hex');
  const keyVal = { public: hex };
  // TUF §4.2: the key id is the hex sha256 of the canonical key; exact canonical form does not matter to tuf-js.
  const keyID = createHash('sha256')
    .update(JSON.stringify({ keytype: 'ed25519', scheme: 'ed25519', keyval: keyVal }))
    .digest('hex');
  return { key: new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal }), privateKey };
}

function signer(k: RoleKey): (data: Buffer) => Signature {
  return (data) => new Signature({ keyID: k.key.keyID, sig: sign(null, data, k.privateKey).toString('hex') });
}

const ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;

export interface PublishedTarget {
  targetPath: string;
  sha256: string;
  length: number;
  /** Path relative to the targets base URL with consistent-snapshot naming (TUF §5.7.3). */
  servedPath: string;
}

/**
 * A real TUF repository in memory: one ed25519 key per top-level role, consistent snapshots on,
 * metadata signed with node:crypto. `publish()` re-signs targets, snapshot and timestamp.
 */
export class TufRepoFixture {
  private readonly keys = Object.fromEntries(ROLES.map((r) => [r, newKey()])) as Record<(typeof ROLES)[number], RoleKey>;
  private readonly files = new Map<string, Buffer>();
  private readonly targetBytes = new Map<string, Buffer>();
  private readonly targetInfos = new Map<string, TargetFile>();
  private targetsVersion = 0;
  private snapshotVersion = 0;
  private timestampVersion = 0;
  readonly rootJson: string;

  constructor(private readonly expiresInDays = 30) {
    const root = new Root({ version: 1, specVersion: '1.0.31', expires: this.expires(), consistentSnapshot: true });
    for (const r of ROLES) root.addKey(this.keys[r].key, r);
    const md = new Metadata(root);
    md.sign(signer(this.keys.root));
    this.rootJson = JSON.stringify(md.toJSON());
    this.files.set('1.root.json', Buffer.from(this.rootJson));
    this.files.set('root.json', Buffer.from(this.rootJson));
    this.publish();
  }

  private expires(days = this.expiresInDays): string {
    return new Date(Date.now() + days * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  /** Signs and serves the next root version with the same keys (a renewal); returns its text. */
  renewRoot(): string {
    const current = (JSON.parse(this.files.get('root.json')!.toString('utf8')) as { signed: Record<string, unknown> & { version: number } }).signed;
    const next = Root.fromJSON({ ...current, version: current.version + 1, expires: this.expires() } as Parameters<typeof Root.fromJSON>[0]);
    const md = new Metadata(next);
    md.sign(signer(this.keys.root));
    const text = JSON.stringify(md.toJSON());
    this.files.set(`${next.version}.root.json`, Buffer.from(text));
    this.files.set('root.json', Buffer.from(text));
    return text;
  }

  addTarget(targetPath: string, bytes: Buffer): PublishedTarget {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    this.targetInfos.set(targetPath, new TargetFile({ path: targetPath, length: bytes.length, hashes: { sha256 } }));
    const parts = targetPath.split('/');
    const base = parts.pop()!;
    const servedPath = [...parts, `${sha256}.${base}`].join('/');
    this.targetBytes.set(servedPath, bytes);
    this.publish();
    return { targetPath, sha256, length: bytes.length, servedPath };
  }

  /** Re-signs targets -> snapshot -> timestamp (TUF §4.4-§4.6). */
  publish(): void {
    this.targetsVersion++;
    const targets = new Targets({
      version: this.targetsVersion,
      specVersion: '1.0.31',
      expires: this.expires(),
      targets: Object.fromEntries(this.targetInfos),
    });
    const tmd = new Metadata(targets);
    tmd.sign(signer(this.keys.targets));
    const targetsBytes = Buffer.from(JSON.stringify(tmd.toJSON()));
    this.files.set(`${this.targetsVersion}.targets.json`, targetsBytes);

    this.snapshotVersion++;
    const snapshot = new Snapshot({
      version: this.snapshotVersion,
      specVersion: '1.0.31',
      expires: this.expires(),
      meta: { 'targets.json': new MetaFile({ version: this.targetsVersion }) },
    });
    const smd = new Metadata(snapshot);
    smd.sign(signer(this.keys.snapshot));
    const snapshotBytes = Buffer.from(JSON.stringify(smd.toJSON()));
    this.files.set(`${this.snapshotVersion}.snapshot.json`, snapshotBytes);

    this.timestampVersion++;
    const timestamp = new Timestamp({
      version: this.timestampVersion,
      specVersion: '1.0.31',
      expires: this.expires(1),
      snapshotMeta: new MetaFile({ version: this.snapshotVersion }),
    });
    const tsmd = new Metadata(timestamp);
    tsmd.sign(signer(this.keys.timestamp));
    this.files.set('timestamp.json', Buffer.from(JSON.stringify(tsmd.toJSON())));
  }

  metadata(name: string): Buffer | undefined {
    return this.files.get(name);
  }

  /** Bytes served for a consistent-snapshot target path (`dir/{sha256}.{file}`). */
  target(servedPath: string): Buffer | undefined {
    return this.targetBytes.get(servedPath);
  }
}
