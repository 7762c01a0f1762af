// A tiny, valid ONNX ModelProto written with a few lines of protobuf encoding, so the demo ships a
// real model without downloading one and without a protobuf dependency at run time. Field numbers
// are those of onnx/onnx.proto (IR version 8); the e2e and unit tests decode the bytes with an
// independent protobuf implementation to prove they parse.

import { ATTR_INT, int, msg, node, str, tensor, valueInfo } from '../device-agent/scripts/onnx-protobuf.mjs';

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
