import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '../common/auth';
import { AppError } from '../common/errors';
import { PEM_CONTENT_TYPE, pemFile } from './pem';
import { ServerTlsService } from './server-tls.service';

@ApiTags('certificates')
@Controller('api/v1')
export class ServerCaController {
  constructor(private readonly serverTls: ServerTlsService) {}

  /** No authentication: what `mosquitto_pub --cafile` needs to verify the broker. */
  @Get('server-ca')
  @Public()
  @ApiProduces(PEM_CONTENT_TYPE)
  @ApiOkResponse({ description: "the CA certificate (PEM) that signed the broker's TLS server certificate" })
  serverCa(@Res({ passthrough: true }) reply: FastifyReply): string {
    const pem = this.serverTls.caCertificatePem();
    if (pem === null) throw new AppError('not-found', 'the server certificate comes from TLS_CERT, which does not include its CA');
    void reply.header('content-type', PEM_CONTENT_TYPE);
    return pemFile(pem);
  }
}
