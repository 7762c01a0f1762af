import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgentCli } from '../support/agent-process.js';

/** The built `fleet-agent` binary: help on every command, and the exit codes systemd and scripts rely on. */
describe('fleet-agent CLI (built binary)', () => {
  it.each(['enroll', 'run', 'status', 'simulate', 'version'])('%s --help prints its usage and exits 0', async (command) => {
    const r = await runAgentCli([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: fleet-agent ${command}`);
    expect(r.stderr).toBe('');
  });

  it('--help lists the commands; --version prints the version', async () => {
    const help = await runAgentCli(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['enroll', 'run', 'status', 'simulate']) expect(help.stdout).toContain(`  ${c} `);
    const version = await runAgentCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('a usage error exits 2 and names the problem; a device not enrolled exits 78', async () => {
    const usage = await runAgentCli(['run', '--data-dir', '/x', '--data-dri']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/unknown option '--data-dri'/);
    const dir = await mkdtemp(join(tmpdir(), 'fleet-agent-cli-'));
    try {
      const notEnrolled = await runAgentCli(['run', '--data-dir', dir]);
      expect(notEnrolled.code).toBe(78);
      expect(notEnrolled.stderr).toMatch(/fleet-agent enroll/);
      const status = await runAgentCli(['status', '--data-dir', dir, '--json']);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ enrolled: false, models: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
