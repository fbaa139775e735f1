import {
  HARDWARE_ID_PATTERN,
  MAX_NOTES_BYTES,
  parseUntrustedJson,
  SHA256_HEX_PATTERN,
} from '#otter/contracts';

/** PCR indexes a TPM 2.0 sha256 bank has: "0".."23", no leading zeros. */
export const PCR_INDEX_PATTERN = /^(?:[0-9]|1[0-9]|2[0-3])$/;
/** Semantic Versioning 2.0.0 (the regex from semver.org); no leading "v". */
export const SEMVER_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Input the client refuses before sending a byte, so a bad push fails fast instead of after a long upload. */
export class ReleaseInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseInputError';
  }
}

/**
 * Checks a parsed measurements value against the contract: an object of PCR index -> sha256 hex.
 * `label` names the source in messages (e.g. the file it came from).
 */
export function validateMeasurements(value: unknown, label = 'measurements'): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ReleaseInputError(`${label}: expected a JSON object of PCR index -> sha256 hex`);
  }
  const measurements: Record<string, string> = {};
  for (const [index, digest] of Object.entries(value)) {
    if (!PCR_INDEX_PATTERN.test(index)) {
      throw new ReleaseInputError(`${label}: PCR index ${JSON.stringify(index)} is not one of "0".."23"`);
    }
    if (typeof digest !== 'string' || !SHA256_HEX_PATTERN.test(digest)) {
      throw new ReleaseInputError(
        `${label}: PCR ${index} digest ${JSON.stringify(digest)} is not a sha256 hex string (64 lowercase hex chars)`,
      );
    }
    measurements[index] = digest;
  }
  return measurements;
}

/** Parses and validates the text of a measurements JSON file. */
export function parseMeasurements(json: string, label = 'measurements'): Record<string, string> {
  let value: unknown;
  try {
    // The server's rule too: a `__proto__`, `constructor` or `prototype` key is refused, not dropped.
    value = parseUntrustedJson(json);
  } catch (e) {
    throw new ReleaseInputError(`${label}: ${(e as Error).message}`);
  }
  return validateMeasurements(value, label);
}

export function validateReleaseFields(fields: {
  hardware: string;
  version: string;
  measurements?: Record<string, string>;
  notes?: string;
}): void {
  if (!HARDWARE_ID_PATTERN.test(fields.hardware)) {
    throw new ReleaseInputError(
      `hardware id ${JSON.stringify(fields.hardware)} must match ${HARDWARE_ID_PATTERN.source}`,
    );
  }
  if (!SEMVER_PATTERN.test(fields.version)) {
    throw new ReleaseInputError(
      `version ${JSON.stringify(fields.version)} is not a semantic version (like 1.4.0 or 2.0.0-rc.1, no leading "v")`,
    );
  }
  if (fields.measurements !== undefined) validateMeasurements(fields.measurements);
  if (fields.notes !== undefined && Buffer.byteLength(fields.notes, 'utf8') > MAX_NOTES_BYTES) {
    throw new ReleaseInputError(`notes are longer than ${MAX_NOTES_BYTES} bytes`);
  }
}
