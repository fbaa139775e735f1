import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Swagger UI's files, from the swagger-ui-dist package @nestjs/swagger brings (never a CDN: Otter often runs
 * where the network is closed). Read once, on first use.
 */
const ASSETS = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
} as const;
export type SwaggerAsset = keyof typeof ASSETS;
export const SWAGGER_ASSETS = Object.keys(ASSETS) as SwaggerAsset[];

let directory: string | undefined;
const cache = new Map<SwaggerAsset, Buffer>();

export function swaggerAsset(name: SwaggerAsset): { contentType: string; body: Buffer } {
  directory ??= dirname(
    createRequire(createRequire(import.meta.url).resolve('@nestjs/swagger')).resolve(
      'swagger-ui-dist/package.json',
    ),
  );
  let body = cache.get(name);
  if (!body) {
    body = readFileSync(join(directory, name));
    cache.set(name, body);
  }
  return { contentType: ASSETS[name], body };
}

/** The page: Swagger UI pointed at the document, its setup in a file of its own (no inline script). */
export const SWAGGER_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Otter API</title>
    <link rel="stylesheet" href="/api/docs/swagger-ui.css" />
    <link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/api/docs/swagger-ui-bundle.js"></script>
    <script src="/api/docs/swagger-ui-standalone-preset.js"></script>
    <script src="/api/docs/swagger-initializer.js"></script>
  </body>
</html>
`;

export const SWAGGER_INITIALIZER = `window.onload = () => {
  window.ui = SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger-ui',
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
  });
};
`;
