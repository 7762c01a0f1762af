import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { createRootLogger, PinoNestLogger, requestContext } from './logger.js';

function capture(level: 'log' | 'debug' = 'log') {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const root = createRootLogger({ level, format: 'json', destination });
  return { lines, nest: new PinoNestLogger(root.pino) };
}

describe('PinoNestLogger', () => {
  it("takes Nest's trailing context, and an error's stack before it", () => {
    const { lines, nest } = capture();
    nest.log('embedded MQTT broker up', 'EmbeddedBroker');
    nest.error('boom', 'Error: boom\n    at x (y.js:1:1)', 'Http');
    nest.warn('no context here');
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', context: 'EmbeddedBroker', msg: 'embedded MQTT broker up' }),
      expect.objectContaining({ level: 'error', context: 'Http', msg: 'boom', stack: 'Error: boom\n    at x (y.js:1:1)' }),
      expect.objectContaining({ level: 'warn', msg: 'no context here' }),
    ]);
    expect(lines[2]).not.toHaveProperty('context');
  });

  it("drops Nest's route listing at the default level and keeps it at debug", () => {
    const quiet = capture('log');
    quiet.nest.log('Mapped {/api/v1/devices, GET} route', 'RouterExplorer');
    expect(quiet.lines).toEqual([]);
    const chatty = capture('debug');
    chatty.nest.log('Mapped {/api/v1/devices, GET} route', 'RouterExplorer');
    expect(chatty.lines).toEqual([expect.objectContaining({ level: 'debug', context: 'RouterExplorer' })]);
  });

  it('adds the request id of the request a line is written in', () => {
    const { lines, nest } = capture();
    requestContext.run({ requestId: 'req-1' }, () => nest.log('device d1 decommissioned', 'Devices'));
    nest.log('outside any request', 'Devices');
    expect(lines[0]).toMatchObject({ requestId: 'req-1' });
    expect(lines[1]).not.toHaveProperty('requestId');
  });

  it('serialises an Error given as the message', () => {
    const { lines, nest } = capture();
    nest.error(new Error('database gone'), 'Database');
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'database gone', context: 'Database', err: { message: 'database gone' } });
  });
});
