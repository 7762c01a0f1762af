import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';

/**
 * The shipped systemd unit is kept honest here (systemd does not run in CI): it runs the agent as
 * its own user in a sandbox, and `systemd-analyze verify` accepts it where systemd-analyze exists.
 */
const SYSTEMD = join(dirname(fileURLToPath(import.meta.url)), '../../systemd');
const UNIT = join(SYSTEMD, 'fleet-agent.service');

/** systemd.syntax(7), as much as the unit uses: sections, `Key=value`, comments, repeated keys. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq <= 0) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

describe('device-agent/systemd/fleet-agent.service', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));
  const service = unit.get('Service')!;
  const value = (key: string): string | undefined => service.get(key)?.at(-1);

  it('runs as the dedicated fleet-agent user that the sysusers.d file creates, never as root', () => {
    expect(value('User')).toBe('fleet-agent');
    expect(value('Group')).toBe('fleet-agent');
    expect(value('DynamicUser')).toBeUndefined();
    const sysusers = readFileSync(join(SYSTEMD, 'fleet-agent.sysusers'), 'utf8');
    expect(sysusers).toMatch(/^u fleet-agent - "[^"]+" \/var\/lib\/fleet-agent$/m);
  });

  it('is sandboxed: read-only system except its data dir, no home, private /tmp, no privileges, no capabilities', () => {
    expect(Object.fromEntries([...service].filter(([k]) => HARDENING.includes(k)).map(([k, v]) => [k, v.at(-1)]))).toEqual({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      ReadWritePaths: '/var/lib/fleet-agent',
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
      RestrictNamespaces: 'yes',
      RestrictSUIDSGID: 'yes',
      RestrictRealtime: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectKernelLogs: 'yes',
      ProtectControlGroups: 'yes',
      ProtectClock: 'yes',
      ProtectHostname: 'yes',
      ProtectProc: 'invisible',
      LockPersonality: 'yes',
      SystemCallArchitectures: 'native',
      SystemCallFilter: '@system-service',
    });
    // Node's JIT needs W+X memory: this one would crash the agent at start.
    expect(value('MemoryDenyWriteExecute')).toBeUndefined();
  });

  it('keeps its state in /var/lib/fleet-agent (0700) and its local API socket in /run/fleet-agent (group-readable)', () => {
    expect(value('ExecStart')).toBe('/usr/bin/env fleet-agent run --data-dir /var/lib/fleet-agent');
    expect(value('StateDirectory')).toBe('fleet-agent');
    expect(value('StateDirectoryMode')).toBe('0700');
    expect(value('RuntimeDirectory')).toBe('fleet-agent');
    expect(value('RuntimeDirectoryMode')).toBe('0750');
    expect(value('RestartPreventExitStatus')).toBe('78');
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
  (analyze ? it : it.skip)('passes systemd-analyze verify', () => {
    const result = spawnSync(analyze!, ['verify', UNIT], { encoding: 'utf8', timeout: 30_000 });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });
});

const HARDENING = [
  'NoNewPrivileges',
  'ProtectSystem',
  'ProtectHome',
  'PrivateTmp',
  'ReadWritePaths',
  'CapabilityBoundingSet',
  'AmbientCapabilities',
  'RestrictAddressFamilies',
  'RestrictNamespaces',
  'RestrictSUIDSGID',
  'RestrictRealtime',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectControlGroups',
  'ProtectClock',
  'ProtectHostname',
  'ProtectProc',
  'LockPersonality',
  'SystemCallArchitectures',
  'SystemCallFilter',
];
