import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { BrokerService, ListenerPorts } from './broker/broker.service';
import { ProblemFilter } from './common/problem.filter';
import { createValidationPipe } from './common/validation';
import { AppConfig } from './config/config';
import { PrismaService } from './database/prisma.service';

export interface RunningApp {
  app: NestFastifyApplication;
  ports: ListenerPorts & { http: number };
  close(): Promise<void>;
}

/** Builds and starts the whole service; main.ts and the tests share this. */
export async function startApp(config: AppConfig): Promise<RunningApp> {
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config),
    new FastifyAdapter({ bodyLimit: 1024 * 1024, trustProxy: false }),
    { bufferLogs: true },
  );
  app.useLogger(app.get(Logger));
  app.useGlobalFilters(new ProblemFilter());
  app.useGlobalPipes(createValidationPipe());
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Multi-tenant MQTT broker')
      .setVersion('1')
      .addBearerAuth()
      .setOpenAPIVersion('3.1.0')
      .build(),
  );
  SwaggerModule.setup('docs', app, document);

  await app.get(PrismaService).connect();
  await app.init();
  const brokerPorts = await app.get(BrokerService).start();
  await app.listen(config.httpPort, config.host);
  const address = app.getHttpServer().address();
  const http = typeof address === 'object' && address ? address.port : config.httpPort;
  return {
    app,
    ports: { ...brokerPorts, http },
    close: () => app.close(),
  };
}
