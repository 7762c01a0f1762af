import type { AgentConfig } from '../config/config.js';
import { probeChildRuntime } from './child-runtime.js';
import { commandRuntimeFactory } from './command-runtime.js';
import { RuntimeRegistry } from './model-runtime.js';

/**
 * Runtimes of a real device: onnx when onnxruntime-node loads here, command when configured.
 * onnxruntime is probed, and later health checks run, in a short-lived child process: loaded
 * into the agent it would hold ≈ 30 MB for as long as the agent runs.
 */
export async function defaultRuntimes(config: AgentConfig): Promise<RuntimeRegistry> {
  const registry = new RuntimeRegistry();
  if (config.runtimes.onnx.enabled) {
    const onnx = await probeChildRuntime({ name: 'onnx', module: new URL('./onnx-runtime.js', import.meta.url).href });
    if (onnx) registry.register(onnx);
  }
  const c = config.runtimes.command;
  if (c) registry.register(commandRuntimeFactory({ command: c.command, args: c.args, timeoutMs: c.timeoutSeconds * 1000, version: c.version }));
  return registry;
}
