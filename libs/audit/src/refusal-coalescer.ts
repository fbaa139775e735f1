/**
 * Floods of refused attempts (a scanner trying tokens, a misconfigured CI job) must not fill the disk. Per key
 * (AuditService uses outcome, attempted action and source address), the first refusal in a window is written at once; the following ones in that
 * window are only counted, and the next row written for that key carries how many were left out. At most
 * `maxKeys` keys are tracked per window: past that (a flood from many addresses) all further sources share one
 * key, so one process writes at most `maxKeys + 1` refused rows per window.
 */
export class RefusalCoalescer {
  private windowStart = 0;
  private readonly suppressed = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys: number,
  ) {}

  /** Null: count it and write nothing. Otherwise write a row saying `coalesced` refusals were left out before it. */
  admit(key: string, now: number): { coalesced: number } | null {
    if (now - this.windowStart >= this.windowMs) {
      // The counts of the window that ended go with the first row of each key in the next one.
      const carried = new Map([...this.suppressed].filter(([, n]) => n > 0));
      this.suppressed.clear();
      for (const [k, n] of carried) this.suppressed.set(k, -n - 1);
      this.windowStart = now;
    }
    const tracked = this.suppressed.has(key) || this.suppressed.size < this.maxKeys ? key : '*';
    const held = this.suppressed.get(tracked);
    if (held === undefined || held < 0) {
      // Not yet written in this window (held < 0 encodes a count carried from the previous one).
      this.suppressed.set(tracked, 0);
      return { coalesced: held === undefined ? 0 : -held - 1 };
    }
    this.suppressed.set(tracked, held + 1);
    return null;
  }
}
