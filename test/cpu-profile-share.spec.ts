import { describe, expect, it } from 'vitest';
import { profileShare, type CpuProfile } from '../bench/lib/cpu-profile-share.mjs';

// A call tree: root → handler → verify (dpop-proof.js) → cryptoVerify; handler → verifiedToken → jose;
// verify → verifiedToken (nested under an entry, excluded below); plus (idle).
const frame = (functionName: string, url = '') => ({ functionName, url });
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 7] },
    { id: 2, callFrame: frame('handler', 'file:///dist/apps/api/route.js'), children: [3, 5] },
    { id: 3, callFrame: frame('verify', 'file:///dist/libs/identity/src/dpop-proof.js'), children: [4, 8] },
    { id: 4, callFrame: frame('verifyOneShot', 'node:internal/crypto/sig') },
    {
      id: 5,
      callFrame: frame('verifiedToken', 'file:///dist/libs/identity/src/device-token.service.js'),
      children: [6],
    },
    { id: 6, callFrame: frame('jwtVerify', 'file:///node_modules/jose/jwt.js') },
    { id: 7, callFrame: frame('(idle)') },
    { id: 8, callFrame: frame('verifiedToken', 'file:///dist/libs/identity/src/device-token.service.js') },
  ],
  // One sample each 10 µs: leaf 4 three times, 3 once, 6 twice, 2 once, 8 once, idle twice.
  samples: [4, 4, 4, 3, 6, 6, 2, 8, 7, 7, 2],
  timeDeltas: [0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],
  startTime: 1000,
};

describe('profileShare', () => {
  it('counts the time under an entry with everything it calls, by call tree', () => {
    const share = profileShare(profile, { entries: ['verify@libs/identity/src/dpop-proof.js'] });
    // Samples 4,4,4,3,8 (the last sample stands for no time: there is no next one).
    expect(share.total).toBe(50);
    expect(share.busy).toBe(80);
    expect(share.idle).toBe(20);
  });

  it('counts a sample under two entries once, for the outermost', () => {
    const share = profileShare(profile, { entries: ['verify', 'handler'] });
    expect(Object.fromEntries(share.under)).toEqual({ verify: 0, handler: 80 });
    expect(share.total).toBe(80);
  });

  it('leaves out what runs under an excluded frame inside an entry', () => {
    const share = profileShare(profile, { entries: ['handler'], exclude: ['verifiedToken'] });
    // The jose samples (6, 6) and the nested verifiedToken (8) are not the handler's.
    expect(share.total).toBe(50);
  });

  it('matches any function of a file with @file, and only the named file', () => {
    expect(profileShare(profile, { entries: ['@device-token.service.js'] }).total).toBe(30);
    expect(profileShare(profile, { entries: ['verify@other.js'] }).total).toBe(0);
  });

  it('counts only samples inside the windows', () => {
    // Sample times: 1000, 1010, ..., 1100; the window holds the samples at 1040 and 1050 (leaf 6).
    const share = profileShare(profile, { entries: ['@jose/jwt.js'], windows: [{ start: 1035, end: 1055 }] });
    expect(share.busy).toBe(20);
    expect(share.total).toBe(20);
  });
});
