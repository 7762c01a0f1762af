import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandRuntime } from './command-runtime.js';

/** A model server speaking the protocol: answers the input's `x` doubled, an error for negative x, nothing for x = 13. */
const SERVER = `
const readline = require('node:readline');
if (process.argv[2] !== '--serve') process.exit(0);
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, input } = JSON.parse(line);
  if (input.x === 13) return;
  process.stdout.write('log line that is not an answer\\n');
  process.stdout.write(JSON.stringify(input.x < 0 ? { id, error: 'negative' } : { id, output: { value: input.x * 2 } }) + '\\n');
});
`;

describe('command runtime inferences (--serve protocol)', () => {
  let dir: string;
  let script: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-cmd-serve-'));
    script = join(dir, 'server.cjs');
    await writeFile(script, SERVER);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('runs inferences through one long-lived process, with errors and timeouts per request', async () => {
    const runtime = new CommandRuntime({ command: process.execPath, args: [script], timeoutMs: 500 });
    await runtime.load(join(dir, 'model.bin'), { targetPath: 'm/1.0.0/model.bin', sha256: 'a'.repeat(64), length: 1, runtime: 'command', compatibility: {} });
    await runtime.selfTest();
    const answers = await Promise.all([1, 2, 3].map(async (x) => runtime.infer({ x })));
    expect(answers).toEqual([{ value: 2 }, { value: 4 }, { value: 6 }]);
    await expect(runtime.infer({ x: -1 })).rejects.toThrow('negative');
    await expect(runtime.infer({ x: 13 })).rejects.toThrow(/timed out/);
    await runtime.unload();
    await expect(runtime.infer({ x: 1 })).rejects.toThrow('no model loaded');
  });
});
