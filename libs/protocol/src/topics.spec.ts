import { describe, expect, it } from '@jest/globals';
import { parseDeviceFilter, parseDeviceTopic, topics } from './topics.js';

describe('device topics', () => {
  it('round-trips every topic builder through the parser', () => {
    expect(parseDeviceTopic(topics.reported('dev-1'))).toEqual({ deviceId: 'dev-1', kind: 'reported' });
    expect(parseDeviceTopic(topics.telemetry('dev-1'))).toEqual({ deviceId: 'dev-1', kind: 'telemetry' });
    expect(parseDeviceTopic(topics.presence('a.b:c_d-e'))).toEqual({ deviceId: 'a.b:c_d-e', kind: 'presence' });
    expect(parseDeviceTopic(topics.desired('dev-1', 'detector'))).toEqual({ deviceId: 'dev-1', kind: 'desired', model: 'detector' });
  });

  it('refuses topics outside the layout', () => {
    expect(parseDeviceTopic('fleet/v1/devices/dev-1')).toBeUndefined();
    expect(parseDeviceTopic('fleet/v1/devices/dev-1/unknown')).toBeUndefined();
    expect(parseDeviceTopic('fleet/v1/devices/dev-1/reported/extra')).toBeUndefined();
    expect(parseDeviceTopic('fleet/v2/devices/dev-1/reported')).toBeUndefined();
    expect(parseDeviceTopic('fleet/v1/devices/+/reported')).toBeUndefined();
    expect(parseDeviceTopic('fleet/v1/devices/dev-1/desired')).toBeUndefined();
    expect(parseDeviceTopic('fleet/v1/devices/dev-1/desired/Bad Name')).toBeUndefined();
  });

  it('allows a single-level wildcard only in the model position of desired', () => {
    expect(parseDeviceFilter(topics.desiredAll('dev-1'))).toEqual({ deviceId: 'dev-1', kind: 'desired' });
    expect(parseDeviceFilter('fleet/v1/devices/dev-1/#')).toBeUndefined();
    expect(parseDeviceFilter('fleet/v1/devices/+/desired/+')).toBeUndefined();
    expect(parseDeviceFilter('fleet/v1/devices/dev-1/+')).toBeUndefined();
    expect(parseDeviceFilter('#')).toBeUndefined();
    expect(parseDeviceFilter(topics.commands('dev-1'))).toEqual({ deviceId: 'dev-1', kind: 'commands' });
  });
});
