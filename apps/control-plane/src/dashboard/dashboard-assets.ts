import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** File types the dashboard serves; anything else under the public folder is not exposed. */
const SERVED_EXTENSIONS = new Set(['.html', '.js', '.css', '.svg', '.png', '.ico', '.json']);

/** Public path of the chart.js bundle (served from node_modules, never from a CDN). */
export const CHART_JS_ASSET = 'vendor/chart.umd.js';

/**
 * Finds the control-plane package root by walking up from this module until the package.json
 * that names it. The same code runs from src/ (tests) and dist/ (production), so the static
 * files stay in src/dashboard/public and need no copy step in the `tsc -b` build.
 */
export function findPackageRoot(fromDir: string, packageName = '@fleetline/control-plane'): string {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const parsed = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown };
      if (parsed.name === packageName) return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package ${packageName} not found above ${fromDir}`);
    dir = parent;
  }
}

/**
 * Maps a request path below /ui/ to a file on disk, or undefined when the path is not a served
 * asset. Rejects traversal (`..`, encoded or not), absolute paths, dotfiles and unknown types.
 */
export function resolveAssetPath(publicDir: string, relative: string): string | undefined {
  if (relative.length === 0 || relative.length > 256) return undefined;
  if (!/^[A-Za-z0-9._/-]+$/.test(relative)) return undefined;
  const segments = relative.split('/');
  if (segments.some((s) => s.length === 0 || s.startsWith('.'))) return undefined;
  if (!SERVED_EXTENSIONS.has(extname(relative))) return undefined;
  const root = resolve(publicDir);
  const full = resolve(root, ...segments);
  return full.startsWith(root + sep) ? full : undefined;
}

export interface DashboardPaths {
  publicDir: string;
  chartJs: string;
}

/** Where the dashboard's files live on this installation. */
export function dashboardPaths(): DashboardPaths {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = findPackageRoot(here);
  // chart.js does not export its UMD file, so locate the package through its main entry.
  const chartMain = createRequire(join(root, 'package.json')).resolve('chart.js');
  return {
    publicDir: join(root, 'src', 'dashboard', 'public'),
    chartJs: join(dirname(chartMain), 'chart.umd.js'),
  };
}

/**
 * Content-Security-Policy of the dashboard: every script, style and connection goes to this origin.
 * Inline scripts and style attributes are not needed (the UI sets styles through the CSSOM).
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
