import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { UsageError } from './exit-codes.js';
import { GATE_METRICS as SERVER_GATE_METRICS, isShadowMetric } from '../../control-plane/src/telemetry/gates/health-gate.contract.js';
import { buildRolloutRequest, GATE_METRICS, parseGate, parseWaves, readDeviceIds, readJsonArgument } from './rollout-spec.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetctl-spec-'));
});

describe('parseWaves', () => {
  it('parses increasing cumulative percentages', () => {
    expect(parseWaves('1,10,100')).toEqual([1, 10, 100]);
    expect(parseWaves('0.5, 100')).toEqual([0.5, 100]);
  });
  it('refuses bad lists', () => {
    for (const bad of ['', '0,100', '10,5', '1,,100', '1,101', 'a']) expect(() => parseWaves(bad)).toThrow(UsageError);
  });
});

describe('buildRolloutRequest', () => {
  it('builds the body from flags, applying wave flags to every wave', async () => {
    const body = await buildRolloutRequest({
      model: 'detector',
      version: '2.1.0',
      tag: ['region=eu', 'line=a=b'],
      waves: '1,10,100',
      bake: '600',
      success: '95',
      failurePercent: '5',
      minExecuted: '10',
      onFailure: 'pause',
    });
    expect(body).toEqual({
      model: 'detector',
      version: '2.1.0',
      target: { tags: { region: 'eu', line: 'a=b' } },
      waves: [1, 10, 100].map((percent) => ({ percent, bakeSeconds: 600, successPercent: 95, failure: { percent: 5, minExecuted: 10 } })),
      onFailure: 'pause',
    });
  });

  it('reads a YAML file and lets flags override its fields', async () => {
    const file = join(dir, 'rollout.yaml');
    await writeFile(
      file,
      'model: detector\nversion: 1.0.0\ntarget:\n  tags: { region: eu }\nwaves:\n  - percent: 50\n    manualApproval: true\n  - percent: 100\nonFailure: abort\n',
    );
    const body = await buildRolloutRequest({ file, version: '2.0.0' });
    expect(body).toEqual({
      model: 'detector',
      version: '2.0.0',
      target: { tags: { region: 'eu' } },
      waves: [{ percent: 50, manualApproval: true }, { percent: 100 }],
      onFailure: 'abort',
    });
  });

  it('reads a JSON file and a device id file', async () => {
    const file = join(dir, 'rollout.json');
    const ids = join(dir, 'ids.txt');
    await writeFile(file, JSON.stringify({ model: 'm', version: '1.0.0', waves: [{ percent: 100 }] }));
    await writeFile(ids, 'dev-1\n# comment\n\ndev-2  # trailing\ndev-1\n');
    const body = await buildRolloutRequest({ file, deviceIdsFile: ids });
    expect(body.target).toEqual({ deviceIds: ['dev-1', 'dev-2'] });
    await expect(readDeviceIds(join(dir, 'missing.txt'))).rejects.toThrow(UsageError);
  });

  it('names the missing piece', async () => {
    await expect(buildRolloutRequest({ version: '1.0.0', tag: ['a=b'], waves: '100' })).rejects.toThrow('--model is required');
    await expect(buildRolloutRequest({ model: 'm', version: '1.0.0', waves: '100' })).rejects.toThrow('a target is required');
    await expect(buildRolloutRequest({ model: 'm', version: '1.0.0', tag: ['a=b'] })).rejects.toThrow('--waves is required');
    await expect(buildRolloutRequest({ model: 'm', version: '1.0.0', tag: ['ab'], waves: '100' })).rejects.toThrow('key=value');
    await expect(buildRolloutRequest({ model: 'm', version: '1.0.0', tag: ['a=b'], waves: '100', onFailure: 'explode' })).rejects.toThrow('pause or rollback');
    await expect(buildRolloutRequest({ model: 'm', version: '1.0.0', tag: ['a=b'], waves: '100', bake: '-1' })).rejects.toThrow('--bake');
  });
});

describe('readJsonArgument', () => {
  it('reads inline JSON and @file', async () => {
    const file = join(dir, 'meta.json');
    await writeFile(file, '{"runtime":"onnx"}');
    expect(await readJsonArgument('{"a":1}', '--metadata')).toEqual({ a: 1 });
    expect(await readJsonArgument(`@${file}`, '--metadata')).toEqual({ runtime: 'onnx' });
    await expect(readJsonArgument('{nope', '--metadata')).rejects.toThrow('--metadata is not valid JSON');
  });
});

describe('gate flags', () => {
  it('parses a metric with its bounds', () => {
    expect(parseGate('latency_p95:maxRatio=1.2')).toEqual({ metric: 'latency_p95', maxRatio: 1.2 });
    expect(parseGate('psi:max=0.2,minSamples=200')).toEqual({ metric: 'psi', max: 0.2, minSamples: 200 });
    expect(parseGate('error_rate:maxIncrease=0.01')).toEqual({ metric: 'error_rate', maxIncrease: 0.01 });
  });

  it('refuses unknown metrics, unknown bounds and gates without a bound', () => {
    expect(() => parseGate('latency_p42:maxRatio=1.2')).toThrow(/metric must be one of/);
    expect(() => parseGate('latency_p95:ratio=1.2')).toThrow(/is not one of maxRatio=N/);
    expect(() => parseGate('latency_p95:maxRatio=x')).toThrow(UsageError);
    expect(() => parseGate('latency_p95')).toThrow(/needs a bound/);
    expect(() => parseGate('latency_p95:minSamples=10')).toThrow(/needs a bound/);
  });

  it('puts gates, samples and window on every wave but the last, and the failure action on the rollout', async () => {
    const body = await buildRolloutRequest({
      model: 'detector',
      version: '1.1.0',
      tag: ['region=eu'],
      waves: '10,50,100',
      gate: ['latency_p95:maxRatio=1.2', 'error_rate:maxIncrease=0.01'],
      minSamples: '500',
      window: '300',
      onGateFailure: 'rollback',
    });
    const gated = {
      gates: [
        { metric: 'latency_p95', maxRatio: 1.2 },
        { metric: 'error_rate', maxIncrease: 0.01 },
      ],
      minSamples: 500,
      windowSeconds: 300,
    };
    expect(body.waves).toEqual([{ percent: 10, ...gated }, { percent: 50, ...gated }, { percent: 100 }]);
    expect(body.onGateFailure).toBe('rollback');
  });

  it('refuses gate flags that cannot apply', async () => {
    const base = { model: 'm', version: '1.0.0', tag: ['a=b'] };
    await expect(buildRolloutRequest({ ...base, waves: '100', gate: ['psi:max=0.2'] })).rejects.toThrow(/at least two waves/);
    await expect(buildRolloutRequest({ ...base, gate: ['psi:max=0.2'] })).rejects.toThrow(/need --waves/);
    await expect(buildRolloutRequest({ ...base, waves: '10,100', window: '5' })).rejects.toThrow(/--window/);
    await expect(buildRolloutRequest({ ...base, waves: '10,100', onGateFailure: 'abort' })).rejects.toThrow(/pause or rollback/);
  });

  it('knows the metrics the control plane gates on', () => {
    // The CLI checks metric names itself for a clear usage error; this keeps its list the server's.
    // Shadow metrics gate shadow waves only, which a rollout file defines; --gate sets the install waves' gates.
    expect([...GATE_METRICS]).toEqual(SERVER_GATE_METRICS.filter((m) => !isShadowMetric(m)));
  });
});
