import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import protobuf from 'protobufjs';
import { linearClassifierOnnx } from './onnx-model.mjs';

/** The part of onnx/onnx.proto (IR version 8) the demo model uses, field numbers as upstream. */
const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message AttributeProto { string name = 1; float f = 2; int64 i = 3; int32 type = 20; }
message ValueInfoProto { string name = 1; TypeProto type = 2; }
message NodeProto { repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4; repeated AttributeProto attribute = 5; string domain = 7; }
message StringStringEntryProto { string key = 1; string value = 2; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9; }
message TensorShapeProto { message Dimension { int64 dim_value = 1; string dim_param = 2; } repeated Dimension dim = 1; }
message TypeProto { message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; } Tensor tensor_type = 1; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; string doc_string = 10; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message ModelProto { int64 ir_version = 1; string producer_name = 2; string producer_version = 3; int64 model_version = 5; GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; repeated StringStringEntryProto metadata_props = 14; }
`;

const model = {
  name: 'detector',
  version: '1.0.0',
  weights: [
    [0.5, -0.2, 0.1],
    [0.3, 0.8, -0.5],
    [-0.4, 0.1, 0.9],
    [0.2, 0.2, 0.2],
  ],
  bias: [0.1, 0, -0.1],
};

interface Decoded {
  irVersion: number;
  producerName: string;
  opsetImport: { domain: string; version: number }[];
  metadataProps: { key: string; value: string }[];
  graph: {
    node: { opType: string; input: string[]; output: string[]; attribute: { name: string; i: number; type: number }[] }[];
    initializer: { name: string; dims: number[]; dataType: number; rawData: Uint8Array }[];
    input: { name: string; type: { tensorType: { elemType: number; shape: { dim: { dimValue?: number; dimParam?: string }[] } } } }[];
    output: { name: string }[];
  };
}

function floats(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

describe('demo ONNX model', () => {
  it('decodes as an ONNX ModelProto with an independent protobuf implementation', () => {
    const ModelProto = protobuf.parse(ONNX_PROTO).root.lookupType('onnx.ModelProto');
    const bytes = linearClassifierOnnx(model);
    const decoded = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: false }) as Decoded;
    expect(decoded.irVersion).toBe(8);
    expect(decoded.producerName).toBe('fleetline-demo');
    expect(decoded.opsetImport).toEqual([{ version: 17 }]);
    expect(decoded.metadataProps).toEqual([{ key: 'version', value: '1.0.0' }]);
    expect(decoded.graph.node.map((n) => n.opType)).toEqual(['Gemm', 'Softmax']);
    expect(decoded.graph.node[0]).toMatchObject({ input: ['features', 'W', 'B'], output: ['logits'] });
    expect(decoded.graph.node[1]).toMatchObject({ input: ['logits'], output: ['probabilities'], attribute: [{ name: 'axis', i: 1, type: 2 }] });
    const [w, b] = decoded.graph.initializer;
    expect(w).toMatchObject({ name: 'W', dims: [4, 3], dataType: 1 });
    expect(floats(w!.rawData)).toEqual(model.weights.flat().map((v) => Math.fround(v)));
    expect(b).toMatchObject({ name: 'B', dims: [3], dataType: 1 });
    expect(decoded.graph.input[0]?.type.tensorType.shape.dim).toEqual([{ dimParam: 'batch' }, { dimValue: 4 }]);
    expect(decoded.graph.output.map((o) => o.name)).toEqual(['probabilities']);
  });

  it('refuses weights whose rows do not match the classes', () => {
    expect(() => linearClassifierOnnx({ ...model, weights: [[1, 2]] })).toThrow(/one value per class/);
  });
});

// onnxruntime-node is an optional dependency of the agent: where it is installed, the model must also
// load and infer there, as on a real device. It runs in a plain Node child: onnxruntime's tensors fail
// instanceof checks inside Jest's vm sandbox.
const agentRequire = createRequire(new URL('../device-agent/package.json', import.meta.url));
const ortPath = ((): string | undefined => {
  try {
    return agentRequire.resolve('onnxruntime-node');
  } catch {
    return undefined;
  }
})();
(ortPath ? describe : describe.skip)('demo ONNX model in onnxruntime-node', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-demo-onnx-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads and computes softmax(x·W + B)', async () => {
    const file = join(dir, 'detector.onnx');
    await writeFile(file, linearClassifierOnnx(model));
    const script = `
      const ort = require(${JSON.stringify(ortPath)});
      ort.InferenceSession.create(${JSON.stringify(file)}).then(async (s) => {
        const r = await s.run({ features: new ort.Tensor('float32', Float32Array.from([0, 0, 0, 1]), [1, 4]) });
        process.stdout.write(JSON.stringify({ dims: r.probabilities.dims, data: Array.from(r.probabilities.data) }));
      });`;
    const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { dims: number[]; data: number[] };
    expect(result.dims).toEqual([1, 3]);
    // features [0,0,0,1] pick the last weight row: logits = [0.3, 0.2, 0.1].
    const logits = [0.3, 0.2, 0.1];
    const sum = logits.reduce((a, l) => a + Math.exp(l), 0);
    logits.forEach((l, i) => expect(result.data[i]).toBeCloseTo(Math.exp(l) / sum, 5));
  });
});
