import { describe, expect, it } from 'vitest';
import { scrapeAllowed } from './scrape-authorization.js';

describe('scrapeAllowed', () => {
  it('lets every scrape through when no token is configured', () => {
    expect(scrapeAllowed(undefined, undefined)).toBe(true);
    expect(scrapeAllowed('Bearer anything', undefined)).toBe(true);
  });

  it('wants the exact bearer token when one is configured', () => {
    const token = 'scrape-token-0123456789';
    expect(scrapeAllowed(`Bearer ${token}`, token)).toBe(true);
    expect(scrapeAllowed(`bearer ${token}`, token)).toBe(true);
    expect(scrapeAllowed(undefined, token)).toBe(false);
    expect(scrapeAllowed('', token)).toBe(false);
    expect(scrapeAllowed(`Bearer ${token}x`, token)).toBe(false);
    expect(scrapeAllowed(`Bearer ${token.slice(0, -1)}`, token)).toBe(false);
    expect(scrapeAllowed(`Basic ${token}`, token)).toBe(false);
    expect(scrapeAllowed(`Bearer ${token} extra`, token)).toBe(false);
  });
});
