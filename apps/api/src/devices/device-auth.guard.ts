import {
  createParamDecorator,
  Inject,
  Injectable,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { OtterError } from '#otter/errors';
import { DeviceIdentityService, type NodeRecord } from '#otter/nodes';
import { deviceCredentials } from './device-credentials.js';

type DeviceRequest = FastifyRequest & { node?: NodeRecord };

/** Device endpoints: a valid access token with its DPoP proof, of an active, unrevoked node. */
@Injectable()
export class DeviceAuthGuard implements CanActivate {
  constructor(
    private readonly identity: DeviceIdentityService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<DeviceRequest>();
    const { accessToken, dpop } = deviceCredentials(request, {
      publicUrl: this.config.publicUrl,
      connectionBinding: this.config.dpopConnectionBinding,
    });
    request.node = await this.identity.authenticate(accessToken, dpop);
    return true;
  }
}

/** The node the request's access token speaks for (set by DeviceAuthGuard). */
export const CurrentNode = createParamDecorator((_: unknown, context: ExecutionContext): NodeRecord => {
  const node = context.switchToHttp().getRequest<DeviceRequest>().node;
  if (!node) throw new OtterError('UNAUTHENTICATED', 'a device access token is required');
  return node;
});
