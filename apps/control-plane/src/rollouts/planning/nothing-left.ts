import type { NewEvent } from '../rollout.repository.js';

/** How many of a rollout's skipped members carry one reason. */
export interface SkipReasonCount {
  reason: string | null;
  devices: number;
}

/** The end of a rollout with no member left to act on: its state reason and the event saying why. */
export interface NothingLeft {
  stateReason: string;
  event: NewEvent;
}

/** At most this many reasons go into the message (all of them into the data). */
const SHOWN_REASONS = 5;

/**
 * Why a rollout whose every member is skipped ends: nobody is left to tell, to follow or to revert
 * (the devices were taken by higher-priority rollouts, or no build of the version fits them), so
 * keeping it running would only let it bake and "complete" waves of nobody. `members` is the total,
 * `released` how many higher-priority rollouts took, `reasons` the most frequent skip reasons with
 * their counts, largest first.
 */
export function nothingLeft(members: number, released: number, reasons: readonly SkipReasonCount[]): NothingLeft {
  const why =
    released >= members
      ? 'every member was released to a higher-priority rollout'
      : released > 0
        ? `every member was skipped (${released} released to higher-priority rollouts)`
        : 'every member was skipped';
  const shown = reasons
    .slice(0, SHOWN_REASONS)
    .map((r) => `${r.devices} ${r.reason ?? 'skipped'}`)
    .join('; ');
  return {
    stateReason: `no device left to act on: ${why}`,
    event: {
      type: 'cancelled',
      message: `cancelled: ${why} (${members} devices: ${shown}${reasons.length > SHOWN_REASONS ? '; ...' : ''}); nothing is told, followed or reverted`,
      data: {
        cause: 'no-devices-left',
        members,
        released,
        reasons: Object.fromEntries(reasons.map((r) => [r.reason ?? 'skipped', r.devices])),
      },
    },
  };
}
