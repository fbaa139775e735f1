/** TUF wants `YYYY-MM-DDTHH:MM:SSZ`, without fractional seconds. */
export function tufExpiry(epochMs: number): string {
  return new Date(Math.floor(epochMs / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
