import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

// V8's heuristics are the point here, so this runs in a plain Node process (not Jest's VM, whose
// own allocations keep the rate up), on the compiled module (npm run build).
const compiled = fileURLToPath(new URL('../../dist/util/heap-compactor.js', import.meta.url));

describe('HeapCompactor on a real V8 heap', () => {
  it('gives back a young generation grown by a burst of allocation once the process is quiet', () => {
    if (!existsSync(compiled)) throw new Error(`${compiled} missing: run "npm run build" first`);
    const script = `
import { getHeapSpaceStatistics } from 'node:v8';
import { HeapCompactor } from ${JSON.stringify(pathToFileURL(compiled).href)};
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
let keep = [];
for (let i = 0; i < 3e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20000) keep = []; }
const grown = newSpace();
new HeapCompactor(6000).schedule();
// Polled, not read once: on a loaded machine the compaction runs later than its 6 s.
const started = Date.now();
const check = setInterval(() => {
  const after = newSpace();
  if (after > grown / 4 && Date.now() - started < 30000) return;
  clearInterval(check);
  process.stdout.write(JSON.stringify({ grown, after, kept: keep.length }));
}, 250);
`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } }),
    ) as {
      grown: number;
      after: number;
      kept: number;
    };
    expect(out.grown).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(out.after).toBeLessThanOrEqual(out.grown / 4);
  }, 60_000);
});
