import { Controller, Get, Header, Res } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { ApiRoute } from './api-route.js';
import { openApiDocument } from './openapi-document.js';
import { routeCatalog } from './route-catalog.js';
import {
  SWAGGER_ASSETS,
  SWAGGER_INITIALIZER,
  SWAGGER_PAGE,
  swaggerAsset,
  type SwaggerAsset,
} from './swagger-ui-assets.js';
import { ValidParam } from './valid-input.js';

/** The API's version in the document: the `v1` of its paths. */
export const API_VERSION = '1.0.0';

/** GET /api/openapi.json and Swagger UI at /api/docs: open to anyone, like the routes' own error answers. */
@Controller('api')
export class OpenApiController {
  private document: unknown;

  constructor(private readonly modules: ModulesContainer) {}

  @Get('openapi.json')
  @ApiRoute({
    summary: 'This OpenAPI 3.1 document',
    response: {
      schema: z.record(z.string(), z.unknown()),
      description: 'The OpenAPI document.',
      example: { openapi: '3.1.0', info: { title: 'Otter API', version: '1.1.0' }, paths: {} },
    },
  })
  openApi(): unknown {
    // Built once: the routes cannot change while the process runs.
    this.document ??= openApiDocument(routeCatalog(this.modules), API_VERSION);
    return this.document;
  }

  @Get('docs')
  @Header('content-type', 'text/html; charset=utf-8')
  @ApiRoute({
    summary: 'Swagger UI',
    response: { mediaType: 'text/html', description: 'The Swagger UI page.' },
  })
  page(): string {
    return SWAGGER_PAGE;
  }

  @Get('docs/:file')
  @ApiRoute({
    summary: "Swagger UI's files",
    response: { mediaType: 'application/octet-stream', description: 'A script, stylesheet or icon.' },
  })
  async asset(
    @ValidParam('file', z.enum([...SWAGGER_ASSETS, 'swagger-initializer.js']))
    file: SwaggerAsset | 'swagger-initializer.js',
    @Res() reply: FastifyReply,
  ): Promise<void> {
    if (file === 'swagger-initializer.js') {
      await reply.header('content-type', 'text/javascript; charset=utf-8').send(SWAGGER_INITIALIZER);
      return;
    }
    const asset = swaggerAsset(file);
    await reply
      .header('content-type', asset.contentType)
      .header('cache-control', 'public, max-age=3600')
      .send(asset.body);
  }
}
