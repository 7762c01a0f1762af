import { describe, expect, it } from '@jest/globals';
import { topics } from '@fleetline/protocol';
import { constantTimeEquals, decideSuperuser, DenyReason, goAuthAction, planAccess, planConnect, type AccessAction } from './broker-auth.decision.js';
import { brokerSecretMatches, presentedSecret } from './broker-secret.js';

const account = { username: 'fleetline-cp', password: 'cp-password-0123456789' };

describe('planConnect', () => {
  it('sends a device with client id = username = a device id on to the credential check', () => {
    expect(planConnect({ clientId: 'cam-1', username: 'cam-1', password: 's3cret' }, account)).toEqual({
      kind: 'verify-device',
      deviceId: 'cam-1',
      secret: 's3cret',
    });
  });

  it('admits the control-plane user with its own password only, as superuser, whatever its client id', () => {
    expect(planConnect({ clientId: 'fleetline-cp-a1b2c3', username: 'fleetline-cp', password: account.password }, account)).toEqual({
      kind: 'decided',
      verdict: { allow: true, superuser: true },
    });
    for (const password of ['wrong', '', undefined, `${account.password}x`]) {
      expect(planConnect({ clientId: 'fleetline-cp-a1b2c3', username: 'fleetline-cp', password }, account)).toMatchObject({
        verdict: { allow: false, reason: DenyReason.ControlPlanePassword },
      });
    }
  });

  it.each([
    [{ clientId: 'cam-1', username: 'cam-2', password: 'x' }, DenyReason.ClientIdMismatch],
    [{ username: 'cam-1', password: 'x' }, DenyReason.ClientIdMismatch],
    [{ clientId: 'cam-1', password: 'x' }, DenyReason.Malformed],
    [{ clientId: 'bad/id', username: 'bad/id', password: 'x' }, DenyReason.InvalidDeviceId],
    [{ clientId: '#', username: '#', password: 'x' }, DenyReason.InvalidDeviceId],
    [{ clientId: 'cam-1', username: 'cam-1' }, DenyReason.BadCredentials],
    [{ clientId: 'cam-1', username: 'cam-1', password: '' }, DenyReason.BadCredentials],
    // A device may never claim the control plane's client ids, nor its name when no account is configured.
    [{ clientId: 'fleetline-cp-a1b2c3', username: 'fleetline-cp-a1b2c3', password: 'x' }, DenyReason.ReservedId],
  ])('denies %j: %s', (request, reason) => {
    expect(planConnect(request, account)).toMatchObject({ kind: 'decided', verdict: { allow: false, reason } });
  });

  it('without a control-plane account, the name is an ordinary device id checked against the store', () => {
    expect(planConnect({ clientId: 'fleetline-cp', username: 'fleetline-cp', password: account.password }, undefined)).toMatchObject({ kind: 'verify-device' });
  });
});

describe('decideSuperuser', () => {
  it('is true for the control-plane user only', () => {
    expect(decideSuperuser('fleetline-cp', account)).toEqual({ allow: true, superuser: true });
    expect(decideSuperuser('cam-1', account)).toMatchObject({ allow: false, reason: DenyReason.NotSuperuser });
    expect(decideSuperuser('fleetline-cp', undefined)).toMatchObject({ allow: false, reason: DenyReason.NotSuperuser });
  });
});

describe('planAccess', () => {
  const own = 'fleet/v1/devices/cam-1';
  const access = (topic: string, action: AccessAction, retain?: boolean, clientId = 'cam-1') =>
    planAccess({ username: 'cam-1', clientId, topic, action, retain }, account);

  it.each([
    [`${own}/reported`, 'publish', false],
    [`${own}/inventory`, 'publish', false],
    [`${own}/presence`, 'publish', false],
    [`${own}/telemetry`, 'publish', false],
    [`${own}/presence`, 'publish', undefined],
    [topics.desiredAll('cam-1'), 'subscribe', undefined],
    [topics.desired('cam-1', 'resnet'), 'subscribe', undefined],
    [topics.commands('cam-1'), 'subscribe', undefined],
    [topics.desired('cam-1', 'resnet'), 'read', undefined],
    [topics.commands('cam-1'), 'read', undefined],
    [topics.desiredAll('cam-1'), 'unsubscribe', undefined],
  ] as const)('lets a live device %s (%s)', (topic, action, retain) => {
    expect(access(topic, action, retain)).toEqual({ kind: 'check-live', deviceId: 'cam-1' });
  });

  it.each([
    ['fleet/v1/devices/cam-2/reported', 'publish', false, DenyReason.ForeignTopic],
    [`${own}/desired/resnet`, 'publish', false, DenyReason.TopicNotAllowed],
    [`${own}/commands`, 'publish', false, DenyReason.TopicNotAllowed],
    [`${own}/reported`, 'publish', true, DenyReason.Retain],
    [`${own}/telemetry`, 'publish', true, DenyReason.Retain],
    ['$SYS/broker/x', 'publish', false, DenyReason.BrokerTopic],
    [`${own}/reported/extra`, 'publish', false, DenyReason.TopicNotAllowed],
    ['fleet/v1/devices/+/reported', 'publish', false, DenyReason.Wildcard],
    ['#', 'subscribe', undefined, DenyReason.Wildcard],
    ['$SYS/#', 'subscribe', undefined, DenyReason.BrokerTopic],
    ['$share/g/fleet/v1/devices/cam-1/commands', 'subscribe', undefined, DenyReason.SharedSubscription],
    ['fleet/v1/devices/cam-2/desired/+', 'subscribe', undefined, DenyReason.ForeignTopic],
    [`${own}/#`, 'subscribe', undefined, DenyReason.Wildcard],
    [`${own}/+`, 'subscribe', undefined, DenyReason.Wildcard],
    [`${own}/reported`, 'subscribe', undefined, DenyReason.TopicNotAllowed],
    ['fleet/v1/devices/+/desired/+', 'subscribe', undefined, DenyReason.Wildcard],
    ['fleet/v1/devices/cam-2/commands', 'read', undefined, DenyReason.ForeignTopic],
    [`${own}/reported`, 'read', undefined, DenyReason.TopicNotAllowed],
  ] as const)('denies %s (%s, retain %s): %s', (topic, action, retain, reason) => {
    expect(access(topic, action, retain)).toMatchObject({ kind: 'decided', verdict: { allow: false, reason } });
  });

  it('binds the client id to the username and keeps the control plane its own', () => {
    expect(access(`${own}/reported`, 'publish', false, 'cam-2')).toMatchObject({ verdict: { allow: false, reason: DenyReason.ClientIdMismatch } });
    expect(planAccess({ username: 'fleetline-cp-1', topic: `${own}/reported`, action: 'publish' }, account)).toMatchObject({
      verdict: { reason: DenyReason.ReservedId },
    });
    expect(
      planAccess({ username: 'fleetline-cp', clientId: 'fleetline-cp-9', topic: '$share/g/fleet/v1/devices/+/reported', action: 'subscribe' }, account),
    ).toEqual({
      kind: 'decided',
      verdict: { allow: true, superuser: true },
    });
  });
});

describe('goAuthAction', () => {
  it('maps mosquitto access bits', () => {
    expect([1, 2, 3, 4, 8, 0, 16].map(goAuthAction)).toEqual(['read', 'publish', 'readwrite', 'subscribe', 'unsubscribe', undefined, undefined]);
  });
});

describe('broker secret', () => {
  const secret = 'broker-secret-0123456789abcdef';
  it('accepts Bearer and Basic (any user name), nothing else', () => {
    expect(brokerSecretMatches(`Bearer ${secret}`, secret)).toBe(true);
    expect(brokerSecretMatches(`Basic ${Buffer.from(`mosquitto:${secret}`).toString('base64')}`, secret)).toBe(true);
    expect(brokerSecretMatches(`Basic ${Buffer.from(`${secret}:`).toString('base64')}`, secret)).toBe(false);
    expect(brokerSecretMatches(`Bearer ${secret}x`, secret)).toBe(false);
    expect(brokerSecretMatches(secret, secret)).toBe(false);
    expect(brokerSecretMatches(undefined, secret)).toBe(false);
    expect(presentedSecret('Basic !!!')).toBeUndefined();
  });

  it('compares in constant time over hashes, so different lengths are fine', () => {
    expect(constantTimeEquals('a', 'a')).toBe(true);
    expect(constantTimeEquals('a', 'ab')).toBe(false);
  });
});
