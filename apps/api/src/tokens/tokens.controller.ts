import { Body, Controller, Delete, Get, Header, Headers, HttpCode, Param, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import type { CreatedTokenDto, TokenListDto } from '#otter/contracts';
import { RequireRole, TokenService } from '#otter/auth';
import { createTokenRequest, parseBody, requireJson } from './token-requests.js';

/** Management API tokens: admin only. */
@Controller('api/v1/tokens')
@RequireRole('admin')
export class TokensController {
  constructor(private readonly tokens: TokenService) {}

  @Post()
  @HttpCode(201)
  @Audited('token.created', {
    target: { kind: 'token', result: 'id' },
    changes: resultFields('name', 'role'),
  })
  // The response carries the secret; no cache may keep it.
  @Header('cache-control', 'no-store')
  async create(
    @Headers('content-type') contentType: string | undefined,
    @Body() body: unknown,
  ): Promise<CreatedTokenDto> {
    requireJson(contentType);
    const request = parseBody(createTokenRequest, body);
    const { dto, token } = await this.tokens.create(request.name, request.role);
    return { ...dto, token };
  }

  @Get()
  async list(): Promise<TokenListDto> {
    return this.tokens.list();
  }

  @Delete(':id')
  @Audited('token.revoked', { target: { kind: 'token', param: 'id' } })
  @HttpCode(204)
  async revoke(@Param('id') id: string): Promise<void> {
    await this.tokens.revoke(id);
  }
}
