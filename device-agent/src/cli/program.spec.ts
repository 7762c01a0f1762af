import { describe, expect, it } from '@jest/globals';
import { main } from './main.js';
import type { CommandHandlers, EnrollOptions, RunOptions, SimulateOptions, StatusOptions } from './program.js';

/** Runs the CLI with recording handlers: what each command would have been called with, and what was printed. */
async function cli(...argv: string[]) {
  const calls: { command: string; options: EnrollOptions | RunOptions | StatusOptions | SimulateOptions }[] = [];
  let out = '';
  let err = '';
  const handlers: CommandHandlers = {
    enroll: async (options) => (calls.push({ command: 'enroll', options }), 0),
    run: async (options) => (calls.push({ command: 'run', options }), 0),
    status: async (options) => (calls.push({ command: 'status', options }), 0),
    simulate: async (options) => (calls.push({ command: 'simulate', options }), 3),
  };
  const code = await main(argv, handlers, { writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  return { code, calls, out, err };
}

describe('fleet-agent CLI', () => {
  it.each(['enroll', 'run', 'status', 'simulate', 'version'])('%s --help prints its usage and runs nothing', async (command) => {
    const r = await cli(command, '--help');
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([]);
    expect(r.out).toContain(`Usage: fleet-agent ${command}`);
  });

  it('--help and help list every command; help <command> is that command help', async () => {
    for (const argv of [['--help'], ['help'], ['-h']]) {
      const r = await cli(...argv);
      expect(r.code).toBe(0);
      for (const c of ['enroll', 'run', 'status', 'simulate']) expect(r.out).toContain(`  ${c} `);
      expect(r.out).toContain('Exit codes');
    }
    const sub = await cli('help', 'simulate');
    expect(sub.code).toBe(0);
    expect(sub.out).toContain('--download-concurrency <n>');
  });

  it('no command prints the help on stderr and exits 2', async () => {
    const r = await cli();
    expect(r.code).toBe(2);
    expect(r.err).toContain('Usage: fleet-agent');
  });

  it('--version and version print the agent version', async () => {
    for (const argv of [['--version'], ['-V'], ['version']]) {
      const r = await cli(...argv);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^\d+\.\d+\.\d+/);
    }
  });

  it('enroll passes every flag, repeated tags in order', async () => {
    const r = await cli(
      'enroll',
      '--server',
      'https://cp',
      '--token',
      'tok.pin',
      '--data-dir',
      '/d',
      '--id',
      'cam-1',
      '--name',
      'Gate',
      '--tag',
      'site=berlin',
      '--tag',
      'line=3',
      '--ca-file',
      'ca.pem',
      '--root-sha256',
      'ab',
      '--root-file',
      'root.json',
      '--enroll-timeout',
      '45',
    );
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([
      {
        command: 'enroll',
        options: {
          server: 'https://cp',
          token: 'tok.pin',
          dataDir: '/d',
          id: 'cam-1',
          name: 'Gate',
          tag: ['site=berlin', 'line=3'],
          caFile: 'ca.pem',
          rootSha256: 'ab',
          rootFile: 'root.json',
          enrollTimeout: 45,
        },
      },
    ]);
  });

  it('enroll gives up after 300 s unless told otherwise (0: tries once), and says so in --help', async () => {
    const base = ['enroll', '--server', 'https://cp', '--token', 't', '--data-dir', '/d'];
    expect((await cli(...base)).calls).toEqual([{ command: 'enroll', options: { server: 'https://cp', token: 't', dataDir: '/d', enrollTimeout: 300 } }]);
    expect((await cli(...base, '--enroll-timeout', '0')).calls[0]?.options).toMatchObject({ enrollTimeout: 0 });
    const help = await cli('enroll', '--help');
    expect(help.out.replace(/\s+/g, ' ')).toContain(
      '--enroll-timeout <seconds> give up after this many seconds, retries included (0: try once) (default: 300)',
    );
    expect(help.out).toContain('Retry-After');
  });

  it('run and status take --data-dir (and status --json)', async () => {
    expect((await cli('run', '--data-dir', '/d')).calls).toEqual([{ command: 'run', options: { dataDir: '/d' } }]);
    expect((await cli('status', '--data-dir', '/d', '--json')).calls).toEqual([{ command: 'status', options: { dataDir: '/d', json: true } }]);
    expect((await cli('status', '--data-dir=/d')).calls).toEqual([{ command: 'status', options: { dataDir: '/d' } }]);
  });

  it('simulate: defaults, repeated options, numbers, and the handler exit code', async () => {
    const r = await cli('simulate', '--server', 'http://a', '--server', 'http://b,http://c', '--token', 't', '--devices', '10');
    expect(r.code).toBe(3);
    expect(r.calls[0]?.options).toEqual({
      server: ['http://a', 'http://b,http://c'],
      token: 't',
      devices: 10,
      workers: 0,
      telemetryInterval: 60,
      download: 'full',
      enrollConcurrency: 50,
      downloadConcurrency: 200,
    });
    const all = await cli(
      'simulate',
      '--server=http://a',
      '--token=t',
      '--devices=5',
      '--workers=2',
      '--tag',
      'lab=x',
      '--behaviour',
      '2.0.0:error_rate=0.5',
      '--behaviour',
      '3.0.0:latency_ms=9',
      '--telemetry-interval',
      '5',
      '--download',
      'skip',
      '--duration',
      '0',
      '--id-prefix',
      'sim-',
      '--enroll-concurrency',
      '7',
      '--download-concurrency',
      '0',
      '--hardware-class',
      'jetson',
      '--accelerator',
      'cuda',
      '--accelerator',
      'trt',
      '--source-addresses',
      '4',
      '--connect-concurrency',
      '8',
    );
    expect(all.calls[0]?.options).toEqual({
      server: ['http://a'],
      token: 't',
      devices: 5,
      workers: 2,
      tag: ['lab=x'],
      behaviour: ['2.0.0:error_rate=0.5', '3.0.0:latency_ms=9'],
      telemetryInterval: 5,
      download: 'skip',
      duration: 0,
      idPrefix: 'sim-',
      enrollConcurrency: 7,
      downloadConcurrency: 1, // at least one download in flight
      hardwareClass: 'jetson',
      accelerator: ['cuda', 'trt'],
      sourceAddresses: 4,
      connectConcurrency: 8,
    });
  });

  it.each([
    [['run'], /required option '--data-dir <dir>'/],
    [['enroll', '--server', 'x', '--data-dir', '/d'], /required option '--token <token>'/],
    [['run', '--data-dir', '/d', '--bogus'], /unknown option '--bogus'/],
    [['status', '--data-dir', '/d', 'extra'], /too many arguments/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['simulate', '--server', 'x', '--token', 't', '--devices', '-1'], /--devices <n>.*must be a non-negative integer/],
    [['simulate', '--server', 'x', '--token', 't', '--devices', '1.5'], /must be a non-negative integer/],
    [['simulate', '--server', 'x', '--token', 't', '--devices', '1', '--download', 'some'], /Allowed choices are full, skip/],
    [['enroll', '--server', 'x', '--token', 't', '--data-dir', '/d', '--tag', 'novalue'], /expected key=value/],
    [['enroll', '--server', 'x', '--token', 't', '--data-dir', '/d', '--enroll-timeout', '-5'], /--enroll-timeout <seconds>.*must be a non-negative integer/],
    [['enroll', '--server', 'x', '--token', 't', '--data-dir', '/d', '--enroll-timeout', '2m'], /must be a non-negative integer/],
    [['enroll', '--server', 'x', '--token', 't', '--data-dir', '/d', '--enroll-timeout', '86401'], /must be at most 86400/],
  ])('usage error %j exits 2 with a message and runs nothing', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.calls).toEqual([]);
    expect(r.err).toMatch(message);
    expect(r.err).toContain('--help');
  });
});
