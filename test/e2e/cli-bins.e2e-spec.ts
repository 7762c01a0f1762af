import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { completionNodes } from '../../apps/fleetctl/src/commands/completion.js';
import { buildProgram } from '../../apps/fleetctl/src/program.js';
import { repoRoot } from '../support/control-plane.process.js';

const exec = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command from the repository root, as a reader types it after `npm ci && npm run build`. */
async function run(file: string, args: string[], options: { input?: string } = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(file, args, { cwd: repoRoot, env: { ...process.env, FLEET_SERVER: '', FLEET_API_KEY: '' }, ...options });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('the CLIs as installed bins (npx, from the repository root)', () => {
  it('npx fleetctl --help prints the usage', async () => {
    const r = await run('npx', ['--no-install', 'fleetctl', '--help']);
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^Usage: fleetctl \[options\] \[command\]/);
    expect(r.stdout).toContain('completion');
  });

  it('npx fleet-agent --help prints the usage', async () => {
    const r = await run('npx', ['--no-install', 'fleet-agent', '--help']);
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^Usage: fleet-agent \[options\] \[command\]/);
    for (const command of ['enroll', 'run', 'status', 'simulate']) expect(r.stdout).toMatch(new RegExp(`^  ${command} \\[options\\]`, 'm'));
    const simulate = await run('npx', ['--no-install', 'fleet-agent', 'simulate', '--help']);
    expect(simulate).toMatchObject({ code: 0 });
    expect(simulate.stdout).toMatch(/^Usage: fleet-agent simulate \[options\]/);
    expect(simulate.stdout).toContain('--server');
  });

  it('every fleetctl command answers --help with its own usage', async () => {
    const paths = completionNodes(buildProgram())
      .map((n) => n.path)
      .filter(Boolean);
    expect(paths).toEqual(expect.arrayContaining(['rollouts create', 'models upload', 'completion']));
    for (const path of paths) {
      const r = await run(process.execPath, ['apps/fleetctl/bin/fleetctl.mjs', ...path.split(' '), '--help']);
      expect({ path, code: r.code }).toEqual({ path, code: 0 });
      expect(r.stdout).toContain(`Usage: fleetctl ${path}`);
    }
    const create = await run(process.execPath, ['apps/fleetctl/bin/fleetctl.mjs', 'rollouts', 'create', '--help']);
    for (const flag of ['--gate <metric:bound=value>', '--min-samples <n>', '--window <seconds>', '--on-gate-failure <action>']) {
      expect(create.stdout).toContain(flag);
    }
  });
});

describe('fleetctl completion', () => {
  /** What bash offers for the words typed so far (the last one is the word being completed). */
  async function complete(...words: string[]): Promise<string[]> {
    const script = `
      source <(node apps/fleetctl/bin/fleetctl.mjs completion bash)
      COMP_WORDS=(${['fleetctl', ...words].map((w) => `'${w}'`).join(' ')})
      COMP_CWORD=${words.length}
      _fleetctl_completion
      printf '%s\\n' "\${COMPREPLY[@]}"
      complete -p fleetctl`;
    const r = await run('bash', ['-c', script]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('complete -o default -F _fleetctl_completion fleetctl');
    return lines.slice(0, -1).filter(Boolean);
  }

  it('completes commands, sub-commands and the flags of the command typed so far', async () => {
    expect(await complete('mo')).toEqual(['models']);
    expect(await complete('rollouts', 'cr')).toEqual(['create']);
    expect(await complete('rollouts', 'create', '--ga')).toEqual(['--gate']);
    expect(await complete('rollouts', 'create', '--model', 'detector', '--on-')).toEqual(['--on-failure', '--on-gate-failure']);
    expect(await complete('--json', 'devices', 'list', '--on')).toEqual(['--online']);
    expect(await complete('completion', '')).toEqual(expect.arrayContaining(['--help']));
  });

  it('prints a zsh script on bash-completion compatibility, and refuses other shells', async () => {
    const zsh = await run(process.execPath, ['apps/fleetctl/bin/fleetctl.mjs', 'completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef fleetctl\n/);
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain('complete -o default -F _fleetctl_completion fleetctl');
    // zsh is not installed on every machine; bash at least must read the script.
    expect((await run('bash', ['-n', '-c', zsh.stdout])).code).toBe(0);

    const fish = await run(process.execPath, ['apps/fleetctl/bin/fleetctl.mjs', 'completion', 'fish']);
    expect(fish.code).toBe(1);
    expect(fish.stderr).toContain('unknown shell "fish" (bash or zsh)');
  });
});
