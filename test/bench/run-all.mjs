#!/usr/bin/env node
// Runs every benchmark in test/bench one after another (they each need the whole machine) and
// stops at the first failure. Each benchmark prints its own table with the raw baseline it
// measured in the same run, and writes JSON to test/bench/results/.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => only.length === 0 || only.some((name) => f.includes(name)))
  .sort();

for (const bench of benches) {
  process.stdout.write(`\n### ${bench}\n`);
  const result = spawnSync(process.execPath, [join(here, bench)], { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`${bench} failed with exit code ${result.status}\n`);
    process.exit(result.status ?? 1);
  }
}
