import { describe, expect, it } from '@jest/globals';
import { certificateNames, normalizeFingerprint } from './client-certificate.js';

describe('client certificate names', () => {
  it('takes subject CNs and DNS/URI alternative names, nothing else', () => {
    expect(certificateNames('dev-1', undefined)).toEqual(['dev-1']);
    expect(certificateNames(['a', 'b'], 'DNS:dev-2, IP Address:10.0.0.1, URI:urn:dev-3, email:x@y')).toEqual(['a', 'b', 'dev-2', 'urn:dev-3']);
    expect(certificateNames(undefined, undefined)).toEqual([]);
  });

  it('normalizes fingerprints to lowercase hex', () => {
    expect(normalizeFingerprint('AB:CD:0F')).toBe('abcd0f');
  });
});
