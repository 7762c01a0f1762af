import { spawn } from 'node:child_process';
import type { ArtifactRef } from '@fleetline/protocol';
import { CommandServer } from './command-serve.js';
import type { ModelRuntime, RuntimeFactory } from './model-runtime.js';

export interface CommandRuntimeOptions {
  /** Executable run as `{command} {modelPath}`; exit code 0 means healthy. */
  command: string;
  args?: string[];
  timeoutMs?: number;
  version?: string;
}

/**
 * Runs a user-provided check script against the model file. Useful for frameworks the agent has no
 * adapter for (TFLite, TensorRT engines, ...): the script loads the model with the real stack.
 */
export class CommandRuntime implements ModelRuntime {
  readonly name = 'command';
  readonly version: string;
  private modelPath: string | undefined;
  /** Started on the first inference (a shadow candidate), kept until unload. */
  private server: CommandServer | undefined;

  constructor(private readonly opts: CommandRuntimeOptions) {
    this.version = opts.version ?? '1.0.0';
  }

  async load(path: string, _artifact: ArtifactRef): Promise<void> {
    this.modelPath = path;
  }

  selfTest(): Promise<void> {
    const modelPath = this.modelPath;
    if (!modelPath) return Promise.reject(new Error('no model loaded'));
    return new Promise((resolve, reject) => {
      const child = spawn(this.opts.command, [...(this.opts.args ?? []), modelPath], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: this.opts.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 2000) stderr += d.toString('utf8');
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`health command exited with ${signal ?? code}${stderr ? `: ${stderr.trim().slice(0, 500)}` : ''}`));
      });
    });
  }

  /** One inference through `{command} ...args --serve {modelPath}` (command-serve.ts has the protocol). */
  async infer(input: unknown): Promise<unknown> {
    const modelPath = this.modelPath;
    if (!modelPath) throw new Error('no model loaded');
    this.server ??= new CommandServer(this.opts.command, this.opts.args ?? [], modelPath, this.opts.timeoutMs ?? 30_000);
    return this.server.infer(input);
  }

  async unload(): Promise<void> {
    this.modelPath = undefined;
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }
}

export function commandRuntimeFactory(opts: CommandRuntimeOptions): RuntimeFactory {
  return { name: 'command', version: opts.version ?? '1.0.0', create: () => new CommandRuntime(opts) };
}
