/** Another active rollout of the same model that already holds some of the new target's devices. */
export interface RolloutConflict {
  rolloutId: string;
  priority: number;
  devices: number;
}

export type ConflictResolution =
  | { kind: 'none' }
  /** 409: the new rollout may not take these devices. */
  | { kind: 'blocked'; conflicts: RolloutConflict[] }
  /** The new rollout outranks every holder: they release the overlapping devices to it. */
  | { kind: 'release'; conflicts: RolloutConflict[] };

/**
 * One active rollout per model per device. A new rollout whose priority is strictly higher
 * than every overlapping rollout takes the overlapping devices from them (explicitly recorded
 * in both rollouts' events); otherwise the creation is refused with the conflicting ids.
 */
export function resolveConflicts(newPriority: number, conflicts: readonly RolloutConflict[]): ConflictResolution {
  const overlapping = conflicts.filter((c) => c.devices > 0);
  if (overlapping.length === 0) return { kind: 'none' };
  const blocking = overlapping.filter((c) => c.priority >= newPriority);
  if (blocking.length > 0) return { kind: 'blocked', conflicts: overlapping };
  return { kind: 'release', conflicts: overlapping };
}

/** Reason of a member a higher-priority rollout took (the SQL matches the prefix). */
export const RELEASED_REASON_PREFIX = 'released to higher-priority rollout ';

export function releasedReason(toRolloutId: string, priority: number): string {
  return `${RELEASED_REASON_PREFIX}${toRolloutId} (priority ${priority})`;
}
