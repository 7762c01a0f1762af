import { pipeline } from 'node:stream/promises';
import { Controller, Get, Inject, Logger, Param, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBasicAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Public } from '../access/access.decorators.js';
import { DeviceAuthGuard, type RequestWithDevice } from '../devices/auth/device-auth.guard.js';
import { ARTIFACT_STORE, type ArtifactStore } from '../models/artifact-store/artifact-store.js';
import { ModelsService, targetPathOf } from '../models/models.service.js';
import { ArtifactAccessPolicy } from './artifact-access.js';
import { decideRange } from './byte-range.js';
import { DistributionErrorCode, DistributionException } from './distribution.exception.js';
import { HotArtifacts } from './hot-artifacts.js';
import { isBinName } from './tuf-bins.js';
import { TufRepositoryService } from './tuf-repository.service.js';

/** Top-level roles and hash bins (`bins-0a`, TAP 15; docs/tuf.md "Hash bins"). */
const METADATA_FILE = /^(?:([1-9]\d{0,8})\.)?(root|targets|snapshot|timestamp|bins-[0-9a-f]{1,4})\.json$/;
/** Consistent-snapshot target file name: `{sha256}.{fileName}` (TUF spec §5.7.3). */
const HASH_PREFIXED = /^([0-9a-f]{64})\.(.+)$/;

/**
 * What devices download, authenticated with their own credentials (HTTP Basic): the TUF
 * metadata chain and the target files it signs. Devices verify everything against the root
 * they pinned at enrollment, so this controller only has to serve bytes faithfully, to the
 * devices that may have them (ArtifactAccessPolicy). The signed metadata is one repository for
 * the whole fleet; its hash bins, which list the targets, are served like the bytes: to the devices
 * that have a target in them.
 */
@ApiTags('distribution')
@ApiBasicAuth()
@Public()
@UseGuards(DeviceAuthGuard)
@Controller('api/v1/tuf')
export class DistributionController {
  private readonly logger = new Logger('Distribution');

  constructor(
    private readonly tuf: TufRepositoryService,
    private readonly models: ModelsService,
    @Inject(ARTIFACT_STORE) private readonly store: ArtifactStore,
    private readonly access: ArtifactAccessPolicy,
    private readonly hot: HotArtifacts,
  ) {}

  @Get('metadata/:file')
  @ApiOperation({ summary: 'TUF metadata: {N}.root.json, timestamp.json, {N}.snapshot.json, {N}.targets.json, {N}.bins-{hex}.json (unversioned = latest)' })
  async metadata(@Param('file') file: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const match = METADATA_FILE.exec(file);
    if (!match) throw new DistributionException(DistributionErrorCode.MetadataNotFound, `no metadata file ${file}`);
    const role = match[2]!;
    if (isBinName(role)) {
      const deviceId = (req as Request & RequestWithDevice).device?.id ?? '';
      if (!(await this.access.mayReadBin(deviceId, role)))
        throw new DistributionException(
          DistributionErrorCode.TargetNotAssigned,
          `device ${deviceId} has no assigned target in ${role} (ARTIFACT_ACCESS=assigned)`,
        );
    }
    const signed = match[1] ? await this.tuf.byVersion(role, Number(match[1])) : await this.tuf.latest(role);
    // Versioned files never change; unversioned ones move with every publish.
    res.setHeader('Cache-Control', match[1] ? 'private, max-age=86400, immutable' : 'no-cache');
    res.type('application/json').send(signed.json);
  }

  @Get('targets/:model/:version/:file')
  @ApiOperation({ summary: 'A target file, by `{sha256}.{fileName}` (consistent snapshot) or `{fileName}`; supports one Range and HEAD' })
  async target(
    @Param('model') model: string,
    @Param('version') version: string,
    @Param('file') file: string,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    // Devices ask by consistent-snapshot name, so that lookup goes first: trying the literal name
    // first cost every download a query that misses (misses are not cached).
    const prefixed = HASH_PREFIXED.exec(file);
    let artifact = prefixed ? await this.models.findArtifactByTargetPath(targetPathOf(model, version, prefixed[2]!)) : undefined;
    if (artifact && artifact.sha256 !== prefixed?.[1]) artifact = undefined;
    artifact ??= await this.models.findArtifactByTargetPath(targetPathOf(model, version, file));
    if (!artifact) throw new DistributionException(DistributionErrorCode.TargetNotFound, `no target ${model}/${version}/${file}`);
    // After the lookup: a 404 tells nothing the signed targets metadata does not already list.
    const deviceId = (req as Request & RequestWithDevice).device?.id ?? '';
    if (!(await this.access.mayDownload(deviceId, model, version)))
      throw new DistributionException(
        DistributionErrorCode.TargetNotAssigned,
        `device ${deviceId} has no assignment of ${model} ${version} (ARTIFACT_ACCESS=assigned)`,
      );
    const inMemory = await this.hot.get(artifact.storageKey, artifact.size, artifact.sha256);
    const stat = inMemory ? { size: inMemory.length } : await this.store.stat(artifact.storageKey);
    if (!stat) {
      this.logger.error(`artifact ${artifact.targetPath} is missing from the store (key ${artifact.storageKey})`);
      throw new DistributionException(DistributionErrorCode.ArtifactMissing, `artifact ${artifact.targetPath} is unavailable`);
    }
    const etag = `"${artifact.sha256}"`;
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', 'private, no-transform');
    res.setHeader('Content-Type', 'application/octet-stream');
    if (req.headers['if-none-match'] === etag) {
      res.status(304).end();
      return;
    }
    // If-Range (RFC 9110 §13.1.5): resume only if the representation is still the same one.
    const ifRange = req.headers['if-range'];
    const decision = ifRange !== undefined && ifRange !== etag ? { kind: 'full' as const } : decideRange(req.headers.range, stat.size);
    if (decision.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${stat.size}`);
      throw new DistributionException(DistributionErrorCode.RangeNotSatisfiable, `range ${req.headers.range ?? ''} is outside 0-${stat.size - 1}`);
    }
    const range = decision.kind === 'partial' ? decision.range : undefined;
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${stat.size}`);
    } else {
      res.status(200);
    }
    res.setHeader('Content-Length', String(range ? range.end - range.start + 1 : stat.size));
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (inMemory) {
      res.end(range ? inMemory.subarray(range.start, range.end + 1) : inMemory);
      return;
    }
    const stream = await this.store.open(artifact.storageKey, range);
    try {
      await pipeline(stream, res);
    } catch (err) {
      // Mostly a device that went away mid-download; it resumes with a Range request.
      this.logger.debug(
        `download of ${artifact.targetPath} by ${(req as Request & { device?: { id: string } }).device?.id ?? '?'} ended early: ${String(err)}`,
      );
    }
  }
}
