import { createHash, randomBytes, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { ecdsaSignatureToDer, TPM_ALG, TPM_ECC_CURVE } from '#otter/tpm-wire';
import {
  AttestationError,
  kdfa,
  kdfe,
  makeCredential,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtPublic,
  parseTpmtSignatureEcdsa,
  publicKeyObject,
  tpmObjectName,
  verifyCertify,
  verifyEkCertificate,
  verifyQuote,
  type TpmPublic,
} from './index.js';
import { attestationErrorCode, TEST_HANDLES, Tpm2Tools } from './testing.js';

const AK = '0x81010020';
const DEVICE_KEY = '0x81010030';

interface Corpus {
  akPublic: Buffer;
  devicePublic: Buffer;
  ekRsaPublic: Buffer;
  ekEccPublic: Buffer;
  quote: { attest: Buffer; signature: Buffer; nonce: Buffer; pcrValues: Record<number, string> };
  certify: { attest: Buffer; signature: Buffer };
  ekCertificate: Buffer;
  names: Record<string, string>;
}

describe('TPM structure parsers', () => {
  let tpm: SoftwareTpm;
  let tools: Tpm2Tools;
  let corpus: Corpus;
  let ak: TpmPublic;

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    tools = await Tpm2Tools.create(tpm.tcti);
    await tools.createEndorsementPrimary();
    const akPublic = await tools.createKey('ak', AK);
    const devicePublic = await tools.createKey('device', DEVICE_KEY);
    const nonce = randomBytes(20);
    const names: Record<string, string> = {};
    for (const handle of [AK, DEVICE_KEY, TEST_HANDLES.ekRsa, TEST_HANDLES.ekEccP384]) {
      names[handle] = /^name: ([0-9a-f]+)$/m.exec(await tools.run('tpm2_readpublic', ['-c', handle]))![1]!;
    }
    corpus = {
      akPublic,
      devicePublic,
      ekRsaPublic: await tools.readPublic(TEST_HANDLES.ekRsa),
      ekEccPublic: await tools.readPublic(TEST_HANDLES.ekEccP384),
      quote: {
        ...(await tools.quote(AK, 'sha256:0,1,2,3,4,5,6,7,9', nonce)),
        nonce,
        pcrValues: await tools.pcrValues([0, 1, 2, 3, 4, 5, 6, 7, 9]),
      },
      certify: await tools.certify(DEVICE_KEY, AK),
      ekCertificate: await tools.nvRead('0x01c00016'),
      names,
    };
    ak = parseTpm2bPublic(akPublic);
  });

  afterAll(async () => {
    await tpm?.stop();
    await tools?.cleanup();
  });

  it('parses TPM2B_PUBLIC of the AK, device key and EKs; names match what the TPM reports', () => {
    expect(ak).toMatchObject({
      type: 'ecc',
      nameAlg: TPM_ALG.SHA256,
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
      ecc: { curveId: TPM_ECC_CURVE.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
      objectAttributes: {
        value: 0x00050472,
        fixedTPM: true,
        fixedParent: true,
        sensitiveDataOrigin: true,
        userWithAuth: true,
        noDA: true,
        restricted: true,
        decrypt: false,
        sign: true,
      },
    });
    expect(ak.ecc!.x).toHaveLength(32);
    expect(ak.publicArea).toEqual(corpus.akPublic.subarray(2));
    expect(parseTpmtPublic(ak.publicArea)).toEqual(ak);
    expect(publicKeyObject(ak).asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });

    const cases: Array<[Buffer, string]> = [
      [corpus.akPublic, AK],
      [corpus.devicePublic, DEVICE_KEY],
      [corpus.ekRsaPublic, TEST_HANDLES.ekRsa],
      [corpus.ekEccPublic, TEST_HANDLES.ekEccP384],
    ];
    for (const [bytes, handle] of cases) {
      expect(tpmObjectName(parseTpm2bPublic(bytes)).toString('hex')).toBe(corpus.names[handle]);
    }
    const ekRsa = parseTpm2bPublic(corpus.ekRsaPublic);
    expect(ekRsa.rsa).toMatchObject({ keyBits: 2048, exponent: 65537 });
    expect(ekRsa.authPolicy.toString('hex')).toBe(
      '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
    );
    expect(publicKeyObject(ekRsa).asymmetricKeyDetails).toMatchObject({
      modulusLength: 2048,
      publicExponent: 65537n,
    });
    expect(publicKeyObject(parseTpm2bPublic(corpus.ekEccPublic)).asymmetricKeyDetails).toEqual({
      namedCurve: 'secp384r1',
    });
  });

  it('parses a quote and a certify TPMS_ATTEST and the ECDSA TPMT_SIGNATURE', () => {
    const quote = parseTpmsAttest(corpus.quote.attest);
    expect(quote).toMatchObject({
      magic: 0xff544347,
      type: 'quote',
      extraData: corpus.quote.nonce,
      safe: true,
    });
    expect(quote.qualifiedSigner.subarray(0, 2).toString('hex')).toBe('000b');
    expect(quote.quote!.selection).toEqual([{ hashAlg: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 9] }]);
    const values = [0, 1, 2, 3, 4, 5, 6, 7, 9].map((pcr) => Buffer.from(corpus.quote.pcrValues[pcr]!, 'hex'));
    expect(quote.quote!.pcrDigest).toEqual(createHash('sha256').update(Buffer.concat(values)).digest());

    const certify = parseTpmsAttest(corpus.certify.attest);
    expect(certify.type).toBe('certify');
    expect(certify.certify!.name.toString('hex')).toBe(corpus.names[DEVICE_KEY]);

    const signature = parseTpmtSignatureEcdsa(corpus.quote.signature);
    expect(signature.hashAlg).toBe(TPM_ALG.SHA256);
    const der = ecdsaSignatureToDer(signature);
    expect(verify('sha256', corpus.quote.attest, { key: publicKeyObject(ak), dsaEncoding: 'der' }, der)).toBe(
      true,
    );
    expect(
      verify(
        'sha256',
        corpus.quote.attest,
        { key: publicKeyObject(ak), dsaEncoding: 'ieee-p1363' },
        Buffer.concat([signature.r, signature.s]),
      ),
    ).toBe(true);
  });

  it('DER-encodes ECDSA integers minimally and non-negatively', () => {
    expect(
      ecdsaSignatureToDer({ r: Buffer.from('000080', 'hex'), s: Buffer.from('7f', 'hex') }).toString('hex'),
    ).toBe('3007020200800201' + '7f');
    expect(ecdsaSignatureToDer({ r: Buffer.alloc(0), s: Buffer.from('0001', 'hex') }).toString('hex')).toBe(
      '3006020100020101',
    );
    const long = ecdsaSignatureToDer({ r: Buffer.alloc(66, 0xff), s: Buffer.alloc(66, 0xff) });
    expect(long.subarray(0, 3).toString('hex')).toBe('30818a');
  });

  it('KDFa and KDFe follow the TPM definitions (counter, NUL-terminated label, contexts, bit length)', () => {
    const key = Buffer.alloc(32, 7);
    const u = Buffer.from('0b00', 'hex');
    const expectedA = createHmacSha256(
      key,
      Buffer.concat([u32(1), Buffer.from('STORAGE\0'), u, u32(128)]),
    ).subarray(0, 16);
    expect(kdfa('sha256', key, 'STORAGE', u, Buffer.alloc(0), 128)).toEqual(expectedA);
    // Two blocks for 384 bits of SHA-256 output.
    const two = kdfa('sha256', key, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 384);
    expect(two.subarray(32)).toEqual(
      createHmacSha256(key, Buffer.concat([u32(2), Buffer.from('INTEGRITY\0'), u32(384)])).subarray(0, 16),
    );
    const z = Buffer.alloc(48, 3);
    const expectedE = createHash('sha384')
      .update(
        Buffer.concat([
          u32(1),
          z,
          Buffer.from('IDENTITY\0'),
          Buffer.from('aa', 'hex'),
          Buffer.from('bb', 'hex'),
        ]),
      )
      .digest();
    expect(kdfe('sha384', z, 'IDENTITY', Buffer.from('aa', 'hex'), Buffer.from('bb', 'hex'), 384)).toEqual(
      expectedE,
    );
    expect(attestationErrorCode(() => kdfa('sha256', key, 'X', u, u, 12))).toBe('CREDENTIAL_INPUT_INVALID');
  });

  describe('robustness: truncated, mutated and random input only ever throws AttestationError', () => {
    const random = seededRandom(0x07735);

    function expectOnlyAttestationErrors(label: string, fn: () => unknown): void {
      try {
        fn();
      } catch (error) {
        if (!(error instanceof AttestationError)) {
          throw new Error(`${label}: threw ${String(error)}`, { cause: error });
        }
      }
    }

    function mutations(sample: Buffer, count: number): Buffer[] {
      const out: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const copy = Buffer.from(sample);
        const edits = 1 + Math.floor(random() * 4);
        for (let e = 0; e < edits; e++) {
          const at = Math.floor(random() * copy.length);
          // Favour values that break length fields: 0x00, 0xff, and small/large sizes.
          copy[at] = [0x00, 0xff, 0x01, 0x80, Math.floor(random() * 256)][Math.floor(random() * 5)]!;
        }
        out.push(copy);
      }
      return out;
    }

    function randomBuffers(count: number): Buffer[] {
      return Array.from({ length: count }, () => {
        const buffer = Buffer.alloc(Math.floor(random() * 300));
        for (let i = 0; i < buffer.length; i++) buffer[i] = Math.floor(random() * 256);
        return buffer;
      });
    }

    const NOT_BYTES: unknown[] = [undefined, null, 'ff544347', 42, {}, [1, 2, 3]];

    it('TPM2B_PUBLIC / TPMT_PUBLIC, and the keys and names built from what parses', () => {
      for (const sample of [corpus.akPublic, corpus.devicePublic, corpus.ekRsaPublic, corpus.ekEccPublic]) {
        for (let length = 0; length < sample.length; length++) {
          expect(attestationErrorCode(() => parseTpm2bPublic(sample.subarray(0, length)))).toMatch(
            /^TPM_PUBLIC_/,
          );
          expect(
            attestationErrorCode(() => parseTpmtPublic(sample.subarray(2, Math.max(2, length)))),
          ).toMatch(/^TPM_PUBLIC_/);
        }
        for (const mutated of [...mutations(sample, 1500), ...randomBuffers(300)]) {
          expectOnlyAttestationErrors('parseTpm2bPublic', () => {
            const parsed = parseTpm2bPublic(mutated);
            expectOnlyAttestationErrors('tpmObjectName', () => tpmObjectName(parsed));
            expectOnlyAttestationErrors('publicKeyObject', () => publicKeyObject(parsed));
            expectOnlyAttestationErrors('makeCredential', () =>
              makeCredential({ ekPublic: parsed, akName: tpmObjectName(ak), secret: Buffer.alloc(16, 1) }),
            );
          });
          expectOnlyAttestationErrors('parseTpmtPublic', () => parseTpmtPublic(mutated.subarray(2)));
        }
      }
      for (const input of NOT_BYTES) {
        expect(attestationErrorCode(() => parseTpm2bPublic(input as Buffer))).toBe('TPM_PUBLIC_MALFORMED');
        expect(attestationErrorCode(() => parseTpmtPublic(input as Buffer))).toBe('TPM_PUBLIC_MALFORMED');
      }
    });

    it('TPMS_ATTEST and TPMT_SIGNATURE, directly and through verifyQuote / verifyCertify', () => {
      const quoteInput = (attest: Buffer, signature: Buffer) => () =>
        verifyQuote({
          akPublic: ak,
          attest,
          signature,
          expectedNonce: corpus.quote.nonce,
          pcrValues: corpus.quote.pcrValues,
        });
      const certifyInput = (attest: Buffer, signature: Buffer) => () =>
        verifyCertify({
          akPublic: ak,
          attest,
          signature,
          certifiedPublic: parseTpm2bPublic(corpus.devicePublic),
        });

      for (const [attest, signature, verifyFn] of [
        [corpus.quote.attest, corpus.quote.signature, quoteInput],
        [corpus.certify.attest, corpus.certify.signature, certifyInput],
      ] as const) {
        for (let length = 0; length < attest.length; length++) {
          expect(attestationErrorCode(() => parseTpmsAttest(attest.subarray(0, length)))).toBe(
            'TPM_ATTEST_MALFORMED',
          );
          expect(attestationErrorCode(verifyFn(attest.subarray(0, length), signature))).toMatch(
            /MALFORMED|MAGIC|TYPE/,
          );
        }
        for (let length = 0; length < signature.length; length++) {
          expect(attestationErrorCode(() => parseTpmtSignatureEcdsa(signature.subarray(0, length)))).toMatch(
            /^TPM_SIGNATURE_/,
          );
          expect(attestationErrorCode(verifyFn(attest, signature.subarray(0, length)))).toMatch(
            /MALFORMED|SIGNATURE_INVALID/,
          );
        }
        for (const mutated of [...mutations(attest, 1500), ...randomBuffers(300)]) {
          expectOnlyAttestationErrors('parseTpmsAttest', () => parseTpmsAttest(mutated));
          // Any change to the signed bytes must be refused.
          if (!mutated.equals(attest)) expect(() => verifyFn(mutated, signature)()).toThrow(AttestationError);
        }
        for (const mutated of [...mutations(signature, 1000), ...randomBuffers(200)]) {
          expectOnlyAttestationErrors('parseTpmtSignatureEcdsa', () => parseTpmtSignatureEcdsa(mutated));
          if (!mutated.equals(signature)) expect(() => verifyFn(attest, mutated)()).toThrow(AttestationError);
        }
        for (const input of NOT_BYTES) {
          expect(attestationErrorCode(verifyFn(input as Buffer, signature))).toMatch(/MALFORMED/);
          expect(attestationErrorCode(verifyFn(attest, input as Buffer))).toMatch(/MALFORMED/);
        }
      }
      for (const input of NOT_BYTES) {
        expect(attestationErrorCode(() => parseTpmsAttest(input as Buffer))).toBe('TPM_ATTEST_MALFORMED');
        expect(attestationErrorCode(() => parseTpmtSignatureEcdsa(input as Buffer))).toBe(
          'TPM_SIGNATURE_MALFORMED',
        );
        const bad = { akPublic: ak, attest: corpus.quote.attest, signature: corpus.quote.signature };
        expect(
          attestationErrorCode(() =>
            verifyQuote({ ...bad, expectedNonce: input as Buffer, pcrValues: corpus.quote.pcrValues }),
          ),
        ).toBe('QUOTE_MALFORMED');
        expect(
          attestationErrorCode(() =>
            verifyQuote({
              ...bad,
              expectedNonce: corpus.quote.nonce,
              pcrValues: corpus.quote.pcrValues,
              // undefined means "no previous quote", which is valid.
              previous: (input ?? null) as never,
            }),
          ),
        ).toBe('QUOTE_MALFORMED');
        expect(
          attestationErrorCode(() =>
            verifyQuote({
              ...bad,
              akPublic: input as TpmPublic,
              expectedNonce: corpus.quote.nonce,
              pcrValues: {},
            }),
          ),
        ).toBe('AK_REJECTED');
      }
    });

    it('EK certificates', async () => {
      const ekPublic = parseTpm2bPublic(corpus.ekEccPublic);
      const cas = ['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'];
      const check = async (certificate: unknown) => {
        try {
          await verifyEkCertificate({ certificate: certificate as Buffer, ekPublic, trustedCas: cas });
        } catch (error) {
          if (error instanceof AttestationError) return;
          throw new Error(`verifyEkCertificate threw ${String(error)}`, { cause: error });
        }
      };
      const der = corpus.ekCertificate.subarray(0, 4 + corpus.ekCertificate.readUInt16BE(2));
      for (let length = 0; length < der.length; length += 3) await check(der.subarray(0, length));
      for (const mutated of [...mutations(der, 400), ...randomBuffers(100)]) await check(mutated);
      for (const input of [...NOT_BYTES, '', '-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----'])
        await check(input);
    });
  });
});

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

/** An independent HMAC-SHA256 (RFC 2104), so the KDF test does not check createHmac against itself. */
function createHmacSha256(key: Buffer, data: Buffer): Buffer {
  const block = 64;
  const k = Buffer.concat([
    key.length > block ? createHash('sha256').update(key).digest() : key,
    Buffer.alloc(block),
  ]);
  const padded = k.subarray(0, block);
  const inner = createHash('sha256')
    .update(Buffer.from(padded.map((b) => b ^ 0x36)))
    .update(data)
    .digest();
  return createHash('sha256')
    .update(Buffer.from(padded.map((b) => b ^ 0x5c)))
    .update(inner)
    .digest();
}

/** Deterministic PRNG (mulberry32) so a failing input can be reproduced. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
