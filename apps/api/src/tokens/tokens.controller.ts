import { Controller, Delete, Get, Header, HttpCode, Param, Post } from '@nestjs/common';
import { Audited, resultFields } from '#otter/audit';
import {
  createTokenRequestSchema,
  type CreatedTokenDto,
  type CreateTokenRequest,
  type TokenListDto,
} from '#otter/contracts';
import { RequireRole, TokenService } from '#otter/auth';
import { ApiRoute } from '../api-contract/api-route.js';
import { createdTokenDtoSchema, tokenListDtoSchema } from '#otter/contracts';
import { JsonBody } from '../api-contract/valid-input.js';

/** Management API tokens: admin only. */
@Controller('api/v1/tokens')
@RequireRole('admin')
export class TokensController {
  constructor(private readonly tokens: TokenService) {}

  @ApiRoute({
    summary: 'Create a management token (its secret is shown once)',
    response: createdTokenDtoSchema,
  })
  @Post()
  @HttpCode(201)
  @Audited('token.created', {
    target: { kind: 'token', result: 'id' },
    changes: resultFields('name', 'role'),
  })
  // The response carries the secret; no cache may keep it.
  @Header('cache-control', 'no-store')
  async create(@JsonBody(createTokenRequestSchema) request: CreateTokenRequest): Promise<CreatedTokenDto> {
    const { dto, token } = await this.tokens.create(request.name, request.role);
    return { ...dto, token };
  }

  @ApiRoute({ summary: 'Management tokens (never their secrets)', response: tokenListDtoSchema })
  @Get()
  async list(): Promise<TokenListDto> {
    return this.tokens.list();
  }

  @ApiRoute({ summary: 'Revoke a management token', errors: ['NOT_FOUND'] })
  @Delete(':id')
  @Audited('token.revoked', { target: { kind: 'token', param: 'id' } })
  @HttpCode(204)
  async revoke(@Param('id') id: string): Promise<void> {
    await this.tokens.revoke(id);
  }
}
