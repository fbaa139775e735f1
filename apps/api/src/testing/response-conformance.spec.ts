import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { CatalogRoute } from '../api-contract/route-catalog.js';
import { routeResponses } from '../api-contract/route-responses.js';
import { conformanceProblem } from './response-conformance.js';

const route: CatalogRoute = {
  method: 'post',
  path: '/api/v1/things',
  name: 'ThingsController.create',
  security: { kind: 'management', role: 'admin' },
  successStatus: 201,
  rateLimited: false,
  input: { params: {}, headers: {} },
  spec: { summary: 'make a thing', response: z.object({ id: z.string() }), errors: ['NODE_NOT_FOUND'] },
};
const entry = { route, responses: routeResponses(route) };
const error = (statusCode: number, code: string) => JSON.stringify({ statusCode, code, message: 'no' });

describe('the response-conformance check', () => {
  it('passes answers the route documents', () => {
    expect(conformanceProblem(entry, 201, JSON.stringify({ id: 'a' }))).toBeUndefined();
    expect(conformanceProblem(entry, 404, error(404, 'NODE_NOT_FOUND'))).toBeUndefined();
    expect(conformanceProblem(entry, 403, error(403, 'FORBIDDEN'))).toBeUndefined();
  });

  it('names an undocumented status, an unlisted error code and a body its schema refuses', () => {
    expect(conformanceProblem(entry, 200, '{}')).toMatch(/status not documented/);
    expect(conformanceProblem(entry, 404, error(404, 'ROLLOUT_NOT_FOUND'))).toMatch(
      /error code ROLLOUT_NOT_FOUND not documented/,
    );
    expect(conformanceProblem(entry, 201, JSON.stringify({ id: 7 }))).toMatch(/does not match its schema/);
    expect(conformanceProblem(entry, 404, 'gone')).toMatch(/not the error body/);
    expect(conformanceProblem(undefined, 200, '{}')).toMatch(/not in the document/);
  });
});
