import type { AgentConfig } from '../config/config.js';
import { commandRuntimeFactory } from './command-runtime.js';
import { RuntimeRegistry } from './model-runtime.js';
import { loadOnnxRuntimeFactory } from './onnx-runtime.js';

/** Runtimes of a real device: onnx when onnxruntime-node resolves, command when configured. */
export async function defaultRuntimes(config: AgentConfig): Promise<RuntimeRegistry> {
  const registry = new RuntimeRegistry();
  if (config.runtimes.onnx.enabled) {
    const onnx = await loadOnnxRuntimeFactory();
    if (onnx) registry.register(onnx);
  }
  const c = config.runtimes.command;
  if (c) registry.register(commandRuntimeFactory({ command: c.command, args: c.args, timeoutMs: c.timeoutSeconds * 1000, version: c.version }));
  return registry;
}
