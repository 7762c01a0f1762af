#!/usr/bin/env node
// Writes a tiny valid ONNX model computing y = x * 2 + 1 on float[1,4], encoded by hand
// (ONNX protobuf, onnx/onnx.proto3), so tests need no downloads and no Python.
//
//   node scripts/make-test-model.mjs [out.onnx]
import { writeFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

function varint(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}
// Protobuf wire format: key = (field << 3) | wire type; 0 = varint, 2 = length-delimited.
const int = (field, n) => Buffer.concat([varint((field << 3) | 0), varint(n)]);
const bytes = (field, buf) => Buffer.concat([varint((field << 3) | 2), varint(buf.length), buf]);
const str = (field, s) => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field, ...parts) => bytes(field, Buffer.concat(parts));

const FLOAT = 1; // TensorProto.DataType.FLOAT

function floatTensor(field, name, values) {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  // TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian)
  return msg(field, int(1, values.length), int(2, FLOAT), str(8, name), bytes(9, raw));
}

function valueInfo(field, name, dims) {
  // ValueInfoProto{name=1, type=2{tensor_type=1{elem_type=1, shape=2{dim=1{dim_value=1}}}}}
  const shape = Buffer.concat(dims.map((d) => msg(1, int(1, d))));
  return msg(field, str(1, name), msg(2, msg(1, int(1, FLOAT), bytes(2, shape))));
}

function node(inputs, outputs, name, opType) {
  // NodeProto: input=1, output=2, name=3, op_type=4
  return msg(1, ...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, name), str(4, opType));
}

export function buildTestModel() {
  const graph = msg(
    7,
    node(['x', 'two'], ['t'], 'mul', 'Mul'),
    node(['t', 'one'], ['y'], 'add', 'Add'),
    str(2, 'fleetline-test'),
    floatTensor(5, 'two', [2]),
    floatTensor(5, 'one', [1]),
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
