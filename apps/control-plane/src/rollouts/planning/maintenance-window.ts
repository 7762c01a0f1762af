import { CronTime } from 'cron';
import type { MaintenanceWindow } from '../rollout.types.js';

/**
 * Maintenance windows: a window opens at each fire time of its cron expression (evaluated in
 * its IANA time zone, so "0 2 * * *" in Europe/Berlin follows daylight saving time) and stays
 * open for durationSeconds. No windows means "always open".
 */
export function inMaintenanceWindow(windows: readonly MaintenanceWindow[], now: Date): boolean {
  if (windows.length === 0) return true;
  return windows.some((w) => windowOpenAt(w, now));
}

function windowOpenAt(w: MaintenanceWindow, now: Date): boolean {
  // A window is open iff the cron fired in (now - duration, now]: ask for the first fire time
  // after now - duration (getNextDateFrom is strictly after its start).
  const from = new Date(now.getTime() - w.durationSeconds * 1000);
  const next = new CronTime(w.cron, w.timeZone).getNextDateFrom(from, w.timeZone);
  return next.toMillis() <= now.getTime();
}

/** When the next window opens (now when one is open), for the API and events. */
export function nextWindowOpening(windows: readonly MaintenanceWindow[], now: Date): Date | null {
  if (windows.length === 0 || inMaintenanceWindow(windows, now)) return now;
  let best: number | null = null;
  for (const w of windows) {
    const t = new CronTime(w.cron, w.timeZone).getNextDateFrom(now, w.timeZone).toMillis();
    if (best === null || t < best) best = t;
  }
  return best === null ? null : new Date(best);
}

/** Problem with a window definition, or undefined when it is valid. */
export function validateMaintenanceWindow(w: MaintenanceWindow): string | undefined {
  const cron = CronTime.validateCronExpression(w.cron);
  if (!cron.valid) return `invalid cron expression "${w.cron}": ${cron.error?.message ?? 'unparseable'}`;
  if (!isValidTimeZone(w.timeZone)) return `unknown time zone "${w.timeZone}"`;
  if (!Number.isInteger(w.durationSeconds) || w.durationSeconds < 60) return 'durationSeconds must be an integer >= 60';
  return undefined;
}

function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
