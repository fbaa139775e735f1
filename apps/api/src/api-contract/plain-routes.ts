import { DIRECTOR_TIMESTAMP_PATH } from '../director/director-timestamp.route.js';
import { TIMESTAMP_PATH } from '../tuf/timestamp.route.js';
import type { CatalogRoute } from './route-catalog.js';
import { tufMetadataSchema } from './tuf-metadata.js';

/**
 * The plain Fastify routes (no Nest controller, so no decorators to read): the two timestamp.json routes
 * every agent asks for on every poll. Described here, next to nothing else, so the catalog lists every route.
 */
export const PLAIN_ROUTES: CatalogRoute[] = [
  {
    method: 'get',
    path: TIMESTAMP_PATH,
    name: 'TimestampRoute',
    security: { kind: 'none' },
    successStatus: 200,
    rateLimited: false,
    input: { params: {}, headers: {} },
    spec: {
      summary: "The image repository's timestamp.json (TUF)",
      description: 'Held for a short while and answered 304 to a matching If-None-Match.',
      response: { schema: tufMetadataSchema },
      otherResponses: { 304: { description: 'Not modified (If-None-Match matched the ETag).' } },
      errors: ['TUF_METADATA_NOT_FOUND', 'TUF_NOT_INITIALIZED', 'TUF_KEY_UNAVAILABLE'],
    },
  },
  {
    method: 'get',
    path: DIRECTOR_TIMESTAMP_PATH.replace(':nodeId', '{nodeId}'),
    name: 'DirectorTimestampRoute',
    security: { kind: 'device' },
    successStatus: 200,
    rateLimited: false,
    input: { params: {}, headers: {} },
    spec: {
      summary: "A node's director timestamp.json (TUF)",
      description: 'The poll every agent makes; signing the per-node metadata happens here when it changed.',
      response: { schema: tufMetadataSchema },
      errors: [
        'DIRECTOR_NOT_INITIALIZED',
        'DIRECTOR_NODE_NOT_FOUND',
        'DIRECTOR_NODE_MISMATCH',
        'DIRECTOR_METADATA_NOT_FOUND',
        'DIRECTOR_KEY_UNAVAILABLE',
        'NODE_NOT_ADMITTED',
      ],
    },
  },
];
