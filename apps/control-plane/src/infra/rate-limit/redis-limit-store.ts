import { Redis } from 'ioredis';
import type { BucketPolicy } from './gcra.js';

/** Keys are `<prefix><bucket>:<source>`; they expire when their bucket would be full again. */
export const DEFAULT_LIMIT_KEY_PREFIX = 'fleetline:limit:';

/**
 * A limit check must not hold a CONNECT or a request up for long: past this the caller falls
 * back to its own replica's buckets (SourceLimits), so a slow Redis costs at most this per check.
 */
const COMMAND_TIMEOUT_MS = 250;

/**
 * GCRA (gcra.ts) in one script, so reading and advancing a key's tat is atomic across replicas.
 * The clock is Redis' own (TIME): replicas whose clocks disagree still share one timeline, where
 * a replica ahead by a minute would otherwise refuse a source for a minute on everyone's behalf.
 * KEYS[1] the bucket; ARGV: emission interval (ms), burst, '1' to take or '0' to peek.
 * Returns 0 (allowed) or the milliseconds until the next token.
 */
const GCRA_LUA = `
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
local ahead = math.max(tat - now, 0)
local over = ahead - (burst - 1) * t
if over > 0 then return math.ceil(over) end
if ARGV[3] == '1' then
  local idle = ahead + t
  redis.call('SET', KEYS[1], string.format('%.3f', now + idle), 'PX', math.ceil(idle))
end
return 0
`;

type LimitRedis = Redis & { fleetlineLimit(key: string, intervalMs: number, burst: number, take: '0' | '1'): Promise<number> };

/**
 * Token buckets shared by every replica, in Redis: one key per bucket and source, advanced by
 * one atomic script per check (a round trip; ioredis pipelines concurrent ones). Commands fail
 * fast instead of queueing while Redis is away (no offline queue, a short timeout): the caller
 * decides what a failure means (SourceLimits falls back to per-replica limits).
 */
export class RedisLimitStore {
  private readonly redis: LimitRedis;

  constructor(
    url: string,
    private readonly keyPrefix = DEFAULT_LIMIT_KEY_PREFIX,
  ) {
    const redis = new Redis(url, {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectionName: 'fleetline-limits',
    });
    redis.defineCommand('fleetlineLimit', { numberOfKeys: 1, lua: GCRA_LUA });
    this.redis = redis as LimitRedis;
  }

  /** Connects; until it has, and whenever Redis is away, checks reject. ioredis keeps reconnecting. */
  connect(onError: (err: Error) => void): Promise<void> {
    this.redis.on('error', onError);
    return this.redis.connect();
  }

  take(bucket: string, source: string, policy: BucketPolicy): Promise<number> {
    return this.redis.fleetlineLimit(this.key(bucket, source), 1000 / policy.perSecond, policy.burst, '1');
  }

  peek(bucket: string, source: string, policy: BucketPolicy): Promise<number> {
    return this.redis.fleetlineLimit(this.key(bucket, source), 1000 / policy.perSecond, policy.burst, '0');
  }

  async close(): Promise<void> {
    // QUIT needs a live connection; otherwise stop reconnecting at once.
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => undefined);
    this.redis.disconnect();
  }

  private key(bucket: string, source: string): string {
    return `${this.keyPrefix}${bucket}:${source}`;
  }
}
