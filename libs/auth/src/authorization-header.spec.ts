import { describe, expect, it } from 'vitest';
import { authorizationCredentials, bearerToken } from './authorization-header.js';

describe('bearerToken', () => {
  it.each(['Bearer', 'bearer', 'BEARER', 'bEaReR'])('reads the token whatever the case of %s', (scheme) => {
    expect(bearerToken(`${scheme} otr_abc-DEF_123`)).toBe('otr_abc-DEF_123');
  });

  it('reads a JWT and base64 padding (token68)', () => {
    expect(bearerToken('Bearer eyJh.eyJz.c2ln')).toBe('eyJh.eyJz.c2ln');
    expect(bearerToken('Bearer YWJj+/==')).toBe('YWJj+/==');
  });

  it.each([
    ['no header', undefined],
    ['a repeated header', ['Bearer a', 'Bearer b']],
    ['another scheme', 'Basic dXNlcjpwYXNz'],
    ['a scheme that only starts with Bearer', 'Bearerx abc'],
    ['no token', 'Bearer'],
    ['an empty token', 'Bearer '],
    ['two tokens', 'Bearer abc def'],
    ['a token with a quote', 'Bearer "abc"'],
    ['a token with a comma', 'Bearer abc,def'],
    ['no space after the scheme', 'Bearerabc'],
  ])('refuses %s', (_name, header) => {
    expect(bearerToken(header)).toBeUndefined();
  });
});

describe('authorizationCredentials', () => {
  it('matches the scheme asked for, case-insensitively', () => {
    expect(authorizationCredentials('dpop abc', 'DPoP')).toBe('abc');
    expect(authorizationCredentials('Bearer abc', 'DPoP')).toBeUndefined();
  });
});
