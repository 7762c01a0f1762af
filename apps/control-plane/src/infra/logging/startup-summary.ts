import { isAbsolute, relative } from 'node:path';
import type { AdminSignIn } from '../../access/access.service.js';

export interface StartupFacts {
  /** Where a browser reaches the dashboard: PUBLIC_URL, or the address the server listens on. */
  dashboardUrl: string;
  database: string;
  mqtt: string;
  signIn: AdminSignIn;
  /** Paths are shown relative to this directory when they lie under it. */
  cwd: string;
}

/** The few lines that end a start: where the dashboard is and which key signs in. */
export function startupSummary(facts: StartupFacts): string[] {
  const base = facts.dashboardUrl.replace(/\/+$/, '');
  const lines = [`Fleetline control plane ready (database: ${facts.database}, mqtt: ${facts.mqtt})`, `  Dashboard  ${base}/   API docs  ${base}/api/docs`];
  const signIn = facts.signIn;
  if (signIn.kind === 'env') {
    lines.push('  Sign in    with the admin API key in FLEET_ADMIN_KEY');
  } else if (signIn.kind === 'generated') {
    lines.push(
      '  Sign in    with this admin API key, generated on this first start and shown only now:',
      `               ${signIn.key}`,
      `             (also in ${shortPath(signIn.file, facts.cwd)}, mode 0600)`,
    );
  } else if (signIn.file) {
    lines.push(`  Sign in    with the admin API key in ${shortPath(signIn.file, facts.cwd)} (written on the first start)`);
  } else {
    lines.push('  Sign in    with an admin API key (the first one was printed on the first start)');
  }
  return lines;
}

function shortPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}
