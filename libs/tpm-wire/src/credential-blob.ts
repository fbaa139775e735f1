/**
 * The credential file tpm2-tools reads (`tpm2_activatecredential -i`) and writes (`tpm2_makecredential -o`):
 * u32 0xBADCC0DE | u32 version 1 | TPM2B_ID_OBJECT | TPM2B_ENCRYPTED_SECRET. The verifier writes it, the agent
 * hands it to the TPM.
 */
const CREDENTIAL_BLOB_MAGIC = 0xbadcc0de;
const CREDENTIAL_BLOB_VERSION = 1;

/** A TPM2B: u16 size, then the bytes. */
export function encodeTpm2b(bytes: Uint8Array): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16BE(bytes.length);
  return Buffer.concat([size, bytes]);
}

/** The credential file of a TPM2B_ID_OBJECT and a TPM2B_ENCRYPTED_SECRET (both with their size prefix). */
export function credentialBlob(idObject: Buffer, encryptedSecret: Buffer): Buffer {
  return Buffer.concat([header(), idObject, encryptedSecret]);
}

/** The credential file, given either the file or the bare TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET. */
export function withCredentialBlobHeader(blob: Buffer): Buffer {
  if (blob.length >= 8 && blob.readUInt32BE(0) === CREDENTIAL_BLOB_MAGIC) return blob;
  return Buffer.concat([header(), blob]);
}

function header(): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32BE(CREDENTIAL_BLOB_MAGIC, 0);
  bytes.writeUInt32BE(CREDENTIAL_BLOB_VERSION, 4);
  return bytes;
}
