import { ModulesContainer } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { errorBodySchema } from '#otter/errors';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { routeCatalog } from './route-catalog.js';
import { asBody } from './route-responses.js';

interface Media {
  schema?: { $ref?: string; example?: unknown };
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}
interface Operation {
  requestBody?: { content: Record<string, Media> };
  responses: Record<string, { description: string; content?: Record<string, Media> }>;
}
interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { example?: unknown }> };
}

const JSON_TYPE = 'application/json';

let api: ApiHarness;
let document: OpenApi;

beforeAll(async () => {
  api = await startApi();
  document = (await (await fetch(`${api.url}/api/openapi.json`)).json()) as OpenApi;
});
afterAll(() => api.close());

/** The example a reader of the document sees for a JSON body: on the media type, or on its (named) schema. */
function exampleOf(media: Media): unknown {
  if (media.example !== undefined) return media.example;
  const ref = media.schema?.$ref?.replace('#/components/schemas/', '');
  return ref === undefined ? media.schema?.example : document.components.schemas[ref]?.example;
}

describe('examples in GET /api/openapi.json', () => {
  it('every JSON request body and every JSON success answer has one', () => {
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const body = op.requestBody?.content[JSON_TYPE];
        if (body && exampleOf(body) === undefined) missing.push(`${method} ${path} request body`);
        for (const [status, response] of Object.entries(op.responses)) {
          const media = response.content?.[JSON_TYPE];
          if (status.startsWith('2') && media && exampleOf(media) === undefined) {
            missing.push(`${method} ${path} ${status}`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('each example parses with the zod schema it illustrates, so it cannot drift from it', () => {
    const wrong: string[] = [];
    let parsed = 0;
    const check = (what: string, schema: z.ZodType | undefined, mediaExample: unknown) => {
      if (!schema) return;
      const example = mediaExample ?? schema.meta()?.example;
      if (example === undefined) return; // the test above names any that is missing
      parsed += 1;
      const result = schema.safeParse(example);
      if (!result.success)
        wrong.push(
          `${what}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        );
    };
    const routes = routeCatalog(api.app.get(ModulesContainer));
    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      check(`${name} request body`, route.input.body?.schema, undefined);
      const answers = [route.spec?.response, ...Object.values(route.spec?.otherResponses ?? {})];
      for (const answer of answers) {
        if (answer === undefined) continue;
        const body = asBody(answer);
        if ((body.mediaType ?? JSON_TYPE) === JSON_TYPE) check(`${name} answer`, body.schema, body.example);
      }
    }
    expect(routes.length).toBeGreaterThan(50);
    expect(parsed).toBeGreaterThan(70);
    expect(wrong).toEqual([]);
  });

  it('every error answer shows an example of each code it lists, in the shared Error body', () => {
    let errorStatuses = 0;
    for (const [path, ops] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, response] of Object.entries(op.responses)) {
          const media = response.content?.[JSON_TYPE];
          // Error answers are the shared Error body; a 416 of a range request, say, is described in words.
          if (media?.schema?.$ref !== '#/components/schemas/Error') continue;
          const what = `${method} ${path} ${status}`;
          const examples = media.examples ?? {};
          errorStatuses += 1;
          expect(Object.keys(examples), what).toEqual(response.description.split(', '));
          for (const [code, { value }] of Object.entries(examples)) {
            expect(errorBodySchema.parse(value), what).toMatchObject({ statusCode: Number(status), code });
          }
        }
      }
    }
    expect(errorStatuses).toBeGreaterThan(200);
  });
});
