import type { ArtifactRef } from '@fleetline/protocol';
import type { ModelRuntime, RuntimeFactory } from './model-runtime.js';

/*
 * Structural types for the parts of onnxruntime-node the adapter uses. onnxruntime-node is an
 * optional dependency, so the agent must build and run without it installed.
 */
interface OrtTensorMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly inputMetadata?: readonly OrtTensorMetadata[];
  run(feeds: Record<string, unknown>): Promise<Record<string, unknown>>;
  release(): Promise<void>;
}
interface OrtModule {
  InferenceSession: { create(path: string): Promise<OrtSession> };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => unknown;
  env: { versions?: { common?: string; node?: string } };
}

/** Zero data as a plain array; onnxruntime converts it to the typed array the element type needs. */
function zeroData(type: string, size: number): unknown[] {
  switch (type) {
    case 'float32':
    case 'float64':
    case 'int32':
    case 'uint8':
    case 'int8':
    case 'int16':
    case 'uint16':
    case 'uint32':
      return new Array<number>(size).fill(0);
    case 'int64':
    case 'uint64':
      return new Array<bigint>(size).fill(0n);
    case 'bool':
      return new Array<boolean>(size).fill(false);
    case 'string':
      return new Array<string>(size).fill('');
    default:
      throw new Error(`self-test cannot build a zero tensor of type ${type}`);
  }
}

export class OnnxRuntime implements ModelRuntime {
  readonly name = 'onnx';
  private session: OrtSession | undefined;

  constructor(
    private readonly ort: OrtModule,
    readonly version: string,
  ) {}

  async load(path: string, _artifact: ArtifactRef): Promise<void> {
    this.session = await this.ort.InferenceSession.create(path);
  }

  /** One inference on zero tensors shaped from the model's input metadata (symbolic dims -> 1). */
  async selfTest(): Promise<void> {
    const session = this.session;
    if (!session) throw new Error('no model loaded');
    const feeds: Record<string, unknown> = {};
    const metadata = session.inputMetadata ?? [];
    for (const name of session.inputNames) {
      const meta = metadata.find((m) => m.name === name);
      if (!meta || !meta.isTensor || !meta.type || !meta.shape) throw new Error(`input ${name} has no tensor metadata`);
      const dims = meta.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
      const size = dims.reduce((a, b) => a * b, 1);
      feeds[name] = new this.ort.Tensor(meta.type, zeroData(meta.type, size), dims);
    }
    const outputs = await session.run(feeds);
    if (Object.keys(outputs).length === 0) throw new Error('model produced no outputs');
  }

  async infer(input: unknown): Promise<unknown> {
    if (!this.session) throw new Error('no model loaded');
    return this.session.run(input as Record<string, unknown>);
  }

  async unload(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    await s?.release();
  }
}

/** Resolves to a factory only when onnxruntime-node can be imported on this device. */
export async function loadOnnxRuntimeFactory(): Promise<RuntimeFactory | undefined> {
  let ort: OrtModule;
  try {
    const specifier = 'onnxruntime-node';
    ort = (await import(specifier)) as OrtModule;
  } catch {
    return undefined;
  }
  const version = ort.env.versions?.node ?? ort.env.versions?.common ?? '0.0.0';
  return { name: 'onnx', version, create: () => new OnnxRuntime(ort, version) };
}

/** The entry point runtime-child.js imports: the agent runs onnxruntime only in that child. */
export const loadRuntimeFactory = loadOnnxRuntimeFactory;
