import { fork } from 'node:child_process';
import type { ArtifactRef } from '@fleetline/protocol';
import type { ModelRuntime, RuntimeFactory } from './model-runtime.js';
import type { ChildAnswer, ChildRequest } from './runtime-child.js';

export interface ChildRuntimeOptions {
  /** Runtime name, as in artifacts' `runtime`. */
  name: string;
  /** URL of the module exporting `loadRuntimeFactory()` that the child imports. */
  module: string;
  /** The child entry point; the compiled runtime-child.js next to this file by default. */
  childScript?: string;
  /** Bound on a probe (a check is bounded by the reconciler's health-check timeout). */
  probeTimeoutMs?: number;
}

const defaultChildScript = (): string => new URL('./runtime-child.js', import.meta.url).pathname;

/** Sends one request to a fresh child and resolves its answer; `kill` ends the child early. */
function ask(opts: ChildRuntimeOptions, req: ChildRequest): { answer: Promise<ChildAnswer>; kill(): void } {
  const child = fork(opts.childScript ?? defaultChildScript(), [opts.module], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'json',
    // The agent's own flags (e.g. --import of a profiler) are not the child's business.
    execArgv: [],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString('utf8');
  });
  const answer = new Promise<ChildAnswer>((resolve) => {
    let got: ChildAnswer | undefined;
    child.once('message', (m: ChildAnswer) => {
      got = m;
    });
    child.once('error', (err) => resolve({ ok: false, error: `runtime child: ${err.message}` }));
    child.once('exit', (code, signal) => {
      resolve(
        got ?? {
          ok: false,
          error: `runtime child exited with ${signal ?? code} before answering${stderr ? `: ${stderr.trim().slice(0, 500)}` : ''}`,
        },
      );
    });
  });
  child.send(req);
  return {
    answer,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * A runtime whose load + self-test run in a child process that exits afterwards: the framework
 * is never loaded into the long-running agent, and the child's memory is the kernel's again as
 * soon as the check is over.
 */
export class ChildProcessRuntime implements ModelRuntime {
  private target: { path: string; artifact: ArtifactRef } | undefined;
  private running: { kill(): void } | undefined;

  constructor(
    private readonly opts: ChildRuntimeOptions,
    readonly version: string,
  ) {}

  get name(): string {
    return this.opts.name;
  }

  async load(path: string, artifact: ArtifactRef): Promise<void> {
    this.target = { path, artifact };
  }

  async selfTest(): Promise<void> {
    if (!this.target) throw new Error('no model loaded');
    const req = ask(this.opts, { op: 'check', ...this.target });
    this.running = req;
    const a = await req.answer;
    this.running = undefined;
    if (!a.ok) throw new Error(a.error);
  }

  async unload(): Promise<void> {
    // A check cut short (health-check timeout) must not keep running, or keep its memory.
    this.running?.kill();
    this.running = undefined;
    this.target = undefined;
  }
}

/** Asks a child whether the runtime loads on this device; a factory only when it does. */
export async function probeChildRuntime(opts: ChildRuntimeOptions): Promise<RuntimeFactory | undefined> {
  const req = ask(opts, { op: 'probe' });
  const timer = setTimeout(() => req.kill(), opts.probeTimeoutMs ?? 60_000);
  const a = await req.answer.finally(() => clearTimeout(timer));
  if (!a.ok) return undefined;
  const version = a.version ?? '0.0.0';
  return { name: opts.name, version, create: () => new ChildProcessRuntime(opts, version) };
}
