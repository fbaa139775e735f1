/**
 * Values the OpenAPI examples share (`.meta({ example })` next to each schema), so that one node, release or
 * rollout reads the same in every example of the document. Documentation only: nothing validates against them.
 */
export const EXAMPLE = {
  nodeId: '3f2b8c1e-9a4d-4e7b-8c21-5d6f0a1b2c3d',
  nodeId2: '6a0d9e55-1b7c-4f08-9e3a-2c4b5d6e7f80',
  rolloutId: '8e1c4a2b-6f3d-4b9a-a7e5-1c2d3e4f5a6b',
  releaseId: 'c7d41f0e-52a8-4c6b-9d13-7e8f9a0b1c2d',
  deltaId: '2b9e7f14-3c5d-4a6e-8f70-91a2b3c4d5e6',
  enrollmentId: '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a',
  tokenId: '9c8b7a6f-5e4d-4c3b-a291-0f1e2d3c4b5a',
  hardware: 'rpi4',
  version: '1.1.0',
  fromVersion: '1.0.0',
  imageSha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  fromSha256: '60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752',
  pcrSha256: '3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969',
  keyId: '4e1243bd22c66e76c2ba9eddc1f91394e57f9f83d5ea4f3e2c8d0a7b6c5d4e3f',
  at: '2026-03-14T09:26:53.000Z',
  later: '2026-03-14T09:41:12.000Z',
  expires: '2026-03-14T09:31:53.000Z',
} as const;
