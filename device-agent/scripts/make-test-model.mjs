#!/usr/bin/env node
// Writes a tiny valid ONNX model computing y = x * 2 + 1 on float[1,4], encoded by hand
// (ONNX protobuf, onnx/onnx.proto3), so tests need no downloads and no Python.
//
//   node scripts/make-test-model.mjs [out.onnx]
import { writeFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { int, msg, node, str, tensor, valueInfo } from './onnx-protobuf.mjs';

export function buildTestModel() {
  const graph = msg(
    7,
    node('Mul', ['x', 'two'], ['t'], 'mul'),
    node('Add', ['t', 'one'], ['y'], 'add'),
    str(2, 'fleetline-test'),
    tensor(5, 'two', [1], [2]),
    tensor(5, 'one', [1], [1]),
    valueInfo(11, 'x', [1, 4]),
    valueInfo(12, 'y', [1, 4]),
  );
  // ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8{domain=1, version=2}
  return Buffer.concat([int(1, 7), str(2, 'fleetline-make-test-model'), graph, msg(8, str(1, ''), int(2, 13))]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const out = process.argv[2] ?? 'test-model.onnx';
  writeFileSync(out, buildTestModel());
  process.stdout.write(`${out}\n`);
}
