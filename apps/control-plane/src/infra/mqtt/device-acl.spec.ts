import { describe, expect, it } from '@jest/globals';
import { authorizeDevicePublish, authorizeDeviceSubscribe, authorizeDeviceWill } from './device-acl.js';

const own = 'fleet/v1/devices/cam-1';
const other = 'fleet/v1/devices/cam-2';

describe('authorizeDevicePublish', () => {
  it.each(['reported', 'inventory', 'presence', 'telemetry'])('allows its own %s', (kind) => {
    expect(authorizeDevicePublish('cam-1', `${own}/${kind}`, false).allowed).toBe(true);
  });

  it.each([
    [`${other}/reported`, false, 'another device'],
    [`${own}/desired/resnet`, false, 'desired is server-only'],
    [`${own}/commands`, false, 'commands are server-only'],
    [`${own}/reported`, true, 'retained report'],
    [`${own}/telemetry`, true, 'retained telemetry'],
    ['$SYS/broker/x', false, 'not a device topic'],
    ['fleet/v1/devices/cam-1/reported/extra', false, 'extra level'],
    ['fleet/v1/devices/+/reported', false, 'wildcard'],
  ])('denies %s (retain %s): %s', (topic, retain) => {
    expect(authorizeDevicePublish('cam-1', topic, retain).allowed).toBe(false);
  });

  it.each(['presence', 'inventory'])('refuses a retained %s: the broker keeps no device state', (kind) => {
    expect(authorizeDevicePublish('cam-1', `${own}/${kind}`, true)).toEqual({ allowed: false, reason: `retained messages are not allowed (${kind})` });
  });
});

describe('authorizeDeviceSubscribe', () => {
  it.each([`${own}/desired/+`, `${own}/desired/resnet`, `${own}/commands`])('allows %s', (filter) => {
    expect(authorizeDeviceSubscribe('cam-1', filter).allowed).toBe(true);
  });

  it.each([
    '#',
    '$SYS/#',
    '$share/g/fleet/v1/devices/cam-1/commands',
    `${other}/desired/+`,
    `${own}/#`,
    `${own}/+`,
    `${own}/reported`,
    'fleet/v1/devices/+/desired/+',
  ])('denies %s', (filter) => {
    expect(authorizeDeviceSubscribe('cam-1', filter).allowed).toBe(false);
  });
});

describe('authorizeDeviceWill', () => {
  it('allows only its own presence topic', () => {
    expect(authorizeDeviceWill('cam-1', `${own}/presence`).allowed).toBe(true);
    expect(authorizeDeviceWill('cam-1', `${other}/presence`).allowed).toBe(false);
    expect(authorizeDeviceWill('cam-1', `${own}/reported`).allowed).toBe(false);
    expect(authorizeDeviceWill('cam-1', `${own}/desired/resnet`).allowed).toBe(false);
  });

  it('refuses a retained will: it would leave a retained message per device in the broker', () => {
    expect(authorizeDeviceWill('cam-1', `${own}/presence`, true)).toEqual({ allowed: false, reason: 'a last will must not be retained' });
  });
});
