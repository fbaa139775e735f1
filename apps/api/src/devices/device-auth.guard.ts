import { createParamDecorator, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { bearerToken } from '#otter/auth';
import { OtterError } from '#otter/errors';
import { DeviceIdentityService, type NodeRecord } from '#otter/nodes';

type DeviceRequest = FastifyRequest & { node?: NodeRecord };

/** Device endpoints: a valid access token of an active, unrevoked node. */
@Injectable()
export class DeviceAuthGuard implements CanActivate {
  constructor(private readonly identity: DeviceIdentityService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<DeviceRequest>();
    const token = bearerToken(request.headers.authorization);
    if (!token) throw new OtterError('UNAUTHENTICATED', 'a device access token is required');
    request.node = await this.identity.authenticate(token);
    return true;
  }
}

/** The node the request's access token speaks for (set by DeviceAuthGuard). */
export const CurrentNode = createParamDecorator((_: unknown, context: ExecutionContext): NodeRecord => {
  const node = context.switchToHttp().getRequest<DeviceRequest>().node;
  if (!node) throw new OtterError('UNAUTHENTICATED', 'a device access token is required');
  return node;
});
