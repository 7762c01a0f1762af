// Protobuf encoding of the few ONNX messages (onnx/onnx.proto, IR version 8) that the repository's
// hand-written models need: the agent's test model (make-test-model.mjs) and the demo's classifier
// (demo/onnx-model.mjs). No protobuf dependency, nothing downloaded.

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** ONNX TensorProto.DataType.FLOAT */
export const FLOAT = 1;
/** ONNX AttributeProto.AttributeType.INT */
export const ATTR_INT = 2;

export function varint(value) {
  const out = [];
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n; // int64 negatives are ten-byte two's complement
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const key = (field, wire) => varint((field << 3) | wire);
export const int = (field, value) => Buffer.concat([key(field, WIRE_VARINT), varint(value)]);
export const bytes = (field, value) => Buffer.concat([key(field, WIRE_LEN), varint(value.length), value]);
export const str = (field, value) => bytes(field, Buffer.from(value, 'utf8'));
export const msg = (field, ...parts) => bytes(field, Buffer.concat(parts));

/** TensorProto with float raw_data. */
export function tensor(field, name, dims, values) {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return msg(field, ...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, raw));
}

/** ValueInfoProto of a float tensor; a string dimension is symbolic (dim_param). */
export function valueInfo(field, name, shape) {
  const dims = shape.map((d) => msg(1, typeof d === 'string' ? str(2, d) : int(1, d)));
  return msg(field, str(1, name), msg(2, msg(1, int(1, FLOAT), msg(2, ...dims))));
}

export function node(opType, inputs, outputs, name, attributes = []) {
  return msg(1, ...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, name), str(4, opType), ...attributes);
}
