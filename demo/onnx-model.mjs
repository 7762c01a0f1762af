// A tiny, valid ONNX ModelProto written with a few lines of protobuf encoding, so the demo ships a
// real model without downloading one and without a protobuf dependency at run time. Field numbers
// are those of onnx/onnx.proto (IR version 8); the e2e and unit tests decode the bytes with an
// independent protobuf implementation to prove they parse.

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** ONNX TensorProto.DataType.FLOAT */
const FLOAT = 1;
/** ONNX AttributeProto.AttributeType.INT */
const ATTR_INT = 2;

function varint(value) {
  const bytes = [];
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n; // int64 negatives are ten-byte two's complement
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0n);
  return Buffer.from(bytes);
}

const key = (field, wire) => varint((field << 3) | wire);
const int = (field, value) => Buffer.concat([key(field, WIRE_VARINT), varint(value)]);
const bytes = (field, value) => Buffer.concat([key(field, WIRE_LEN), varint(value.length), value]);
const str = (field, value) => bytes(field, Buffer.from(value, 'utf8'));
const msg = (field, ...parts) => bytes(field, Buffer.concat(parts));

/** TensorProto with float raw_data. */
function tensor(field, name, dims, values) {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return msg(field, ...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, raw));
}

/** ValueInfoProto of a float tensor; a string dimension is symbolic (dim_param). */
function valueInfo(field, name, shape) {
  const dims = shape.map((d) => msg(1, typeof d === 'string' ? str(2, d) : int(1, d)));
  return msg(field, str(1, name), msg(2, msg(1, int(1, FLOAT), msg(2, ...dims))));
}

function node(opType, inputs, outputs, name, attributes = []) {
  return msg(1, ...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, name), str(4, opType), ...attributes);
}

/**
 * A linear classifier: probabilities = Softmax(features · W + B), features [batch, inputs],
 * W [inputs, classes]. Returns the serialized ModelProto.
 */
export function linearClassifierOnnx({ name, version, weights, bias, docString = '' }) {
  const inputs = weights.length;
  const classes = bias.length;
  if (weights.some((row) => row.length !== classes)) throw new Error('every weight row needs one value per class');
  const graph = msg(
    7,
    node('Gemm', ['features', 'W', 'B'], ['logits'], 'classifier'),
    node('Softmax', ['logits'], ['probabilities'], 'softmax', [msg(5, str(1, 'axis'), int(3, 1), int(20, ATTR_INT))]),
    str(2, name),
    tensor(5, 'W', [inputs, classes], weights.flat()),
    tensor(5, 'B', [classes], bias),
    ...(docString ? [str(10, docString)] : []),
    valueInfo(11, 'features', ['batch', inputs]),
    valueInfo(12, 'probabilities', ['batch', classes]),
  );
  return Buffer.concat([
    int(1, 8), // ir_version
    str(2, 'fleetline-demo'),
    str(3, version),
    int(5, 1),
    graph,
    msg(8, int(2, 17)), // opset_import: the default domain (ai.onnx), opset 17
    msg(14, str(1, 'version'), str(2, version)), // metadata_props
  ]);
}
