import { readFile } from 'node:fs/promises';
import type { ModelRuntime, RuntimeFactory } from '../runtime/model-runtime.js';

/**
 * A runtime module for the runtime-child protocol tests: the model file's first word decides the
 * self-test (ok | bad | hang | exit). Imported with `?unavailable` it reports no runtime, as
 * onnx-runtime.js does where onnxruntime-node is not installed.
 */
export async function loadRuntimeFactory(): Promise<RuntimeFactory | undefined> {
  if (new URL(import.meta.url).search === '?unavailable') return undefined;
  const create = (): ModelRuntime => {
    let path: string | undefined;
    return {
      name: 'fixture',
      version: '2.3.4',
      load: async (p) => {
        path = p;
      },
      selfTest: async () => {
        const word = (await readFile(path ?? '', 'utf8')).trim();
        if (word === 'ok') return;
        if (word === 'hang') await new Promise(() => undefined);
        if (word === 'exit') process.exit(7);
        throw new Error(`model says ${word}`);
      },
      unload: async () => undefined,
    };
  };
  return { name: 'fixture', version: '2.3.4', create };
}
