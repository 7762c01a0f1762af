import { describe, expect, it } from '@jest/globals';
import { SseParser } from './sse.js';

describe('SseParser', () => {
  it('joins data lines, skips comments and dispatches on a blank line', () => {
    const parser = new SseParser();
    expect(parser.push(': heartbeat\n\nevent: rollout\nid: 7\ndata: {"a":\ndata: 1}\n\n')).toEqual([{ event: 'rollout', id: '7', data: '{"a":\n1}' }]);
  });

  it('handles events split across chunks, including a CRLF split between chunks', () => {
    const parser = new SseParser();
    expect(parser.push('data: hel')).toEqual([]);
    expect(parser.push('lo\r')).toEqual([]);
    expect(parser.push('\n\r\n')).toEqual([{ event: 'message', data: 'hello' }]);
  });

  it('does not dispatch an event without data and resets the event name', () => {
    const parser = new SseParser();
    expect(parser.push('event: ping\n\ndata: x\n\n')).toEqual([{ event: 'message', data: 'x' }]);
  });

  it('strips exactly one leading space from a value', () => {
    expect(new SseParser().push('data:  two\n\n')).toEqual([{ event: 'message', data: ' two' }]);
  });
});
