#!/usr/bin/env node
// Writes the demo's two model versions to demo/models/ (run by `npm run build`; nothing is downloaded).
// 1.1.0 is the "regressing" release of the tour: the model itself is as valid as 1.0.0, the
// simulated fleet is what makes it slow (fleet-agent simulate --behaviour).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linearClassifierOnnx } from './onnx-model.mjs';

const out = join(dirname(fileURLToPath(import.meta.url)), 'models');
mkdirSync(out, { recursive: true });

const versions = {
  '1.0.0': {
    weights: [
      [0.5, -0.2, 0.1],
      [0.3, 0.8, -0.5],
      [-0.4, 0.1, 0.9],
      [0.2, 0.2, 0.2],
    ],
    bias: [0.1, 0, -0.1],
  },
  '1.1.0': {
    weights: [
      [0.6, -0.1, 0.1],
      [0.2, 0.9, -0.4],
      [-0.3, 0.2, 0.8],
      [0.1, 0.3, 0.2],
    ],
    bias: [0.05, 0.05, -0.1],
  },
};
for (const [version, params] of Object.entries(versions)) {
  const file = join(out, `detector-${version}.onnx`);
  writeFileSync(file, linearClassifierOnnx({ name: 'detector', version, docString: 'Fleetline demo: 4 features -> 3 classes', ...params }));
}
