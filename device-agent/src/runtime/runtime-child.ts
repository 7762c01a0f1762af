/*
 * Child process that runs one health check (or a probe) with a runtime module and exits, so the
 * memory a framework like onnxruntime takes is returned to the device when the check is over.
 *
 * Started by child-runtime.ts with fork(): argv[2] is the URL of a module exporting
 * `loadRuntimeFactory(): Promise<RuntimeFactory | undefined>`. One request, one answer (IPC):
 *   -> { op: 'probe' }                       <- { ok: true, version } | { ok: false, error }
 *   -> { op: 'check', path, artifact }       <- { ok: true } | { ok: false, error }
 */
import type { ArtifactRef } from '@fleetline/protocol';
import type { RuntimeFactory } from './model-runtime.js';

export type ChildRequest = { op: 'probe' } | { op: 'check'; path: string; artifact: ArtifactRef };
export type ChildAnswer = { ok: true; version?: string } | { ok: false; error: string; unavailable?: boolean };

async function answer(req: ChildRequest): Promise<ChildAnswer> {
  const moduleUrl = process.argv[2];
  if (!moduleUrl) return { ok: false, error: 'runtime child: no runtime module given' };
  let factory: RuntimeFactory | undefined;
  try {
    const mod = (await import(moduleUrl)) as { loadRuntimeFactory?: () => Promise<RuntimeFactory | undefined> };
    factory = await mod.loadRuntimeFactory?.();
  } catch (err: unknown) {
    return { ok: false, unavailable: true, error: `runtime module failed to load: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!factory) return { ok: false, unavailable: true, error: 'runtime is not available on this device' };
  if (req.op === 'probe') return { ok: true, version: factory.version };
  const runtime = factory.create();
  try {
    await runtime.load(req.path, req.artifact);
    await runtime.selfTest();
    return { ok: true };
  } catch (err: unknown) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    await runtime.unload().catch(() => undefined);
  }
}

if (process.send) {
  process.once('message', (req: ChildRequest) => {
    void answer(req).then((a) => process.send?.(a, () => process.exit(0)));
  });
  // The parent went away (agent stopped or killed): nothing left to answer.
  process.once('disconnect', () => process.exit(0));
}
