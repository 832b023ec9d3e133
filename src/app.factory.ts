import { NestFactory } from '@nestjs/core';
import { LogController } from 'fastify';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { createRootLogger, logRequests, PinoNestLogger } from './common/logging';
import { echoRequestIds, requestId } from './common/request-id';
import { BrokerService, ListenerPorts } from './broker/broker.service';
import { ProblemFilter } from './common/problem.filter';
import { createValidationPipe } from './common/validation';
import { AppConfig } from './config/config';
import { PrismaService } from './database/prisma.service';
import { loadOpenApiDocument } from './openapi/openapi-document';

export interface RegisteredRoute {
  method: string;
  url: string;
}

export interface RunningApp {
  app: NestFastifyApplication;
  ports: ListenerPorts & { http: number };
  /** every HTTP route registered with Fastify (HEAD and the /docs assets included) */
  routes: readonly RegisteredRoute[];
  close(): Promise<void>;
}

/** Builds and starts the whole service; main.ts and the tests share this. */
export async function startApp(config: AppConfig): Promise<RunningApp> {
  const logger = createRootLogger(config.logLevel);
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config),
    new FastifyAdapter({
      bodyLimit: 1024 * 1024,
      trustProxy: false,
      // request ids in every log line and response (x-request-id)
      genReqId: requestId,
      loggerInstance: logger,
      // one line per request, written by logRequests (Fastify's own two lines repeat the headers)
      logController: new LogController({ disableRequestLogging: true }),
      // MQTT topics and client ids travel as one percent-encoded path segment (retained/{topic}):
      // find-my-way's default of 100 characters would turn longer ones into 404s
      routerOptions: { maxParamLength: 16 * 1024 },
    }),
    { bufferLogs: true },
  );
  // every route the app registers, for the test that holds openapi/openapi.yaml to them
  const routes: RegisteredRoute[] = [];
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRoute', (route) => {
      for (const method of ([] as string[]).concat(route.method)) routes.push({ method, url: route.url });
    });
  echoRequestIds(app.getHttpAdapter().getInstance());
  logRequests(app.getHttpAdapter().getInstance());
  app.useLogger(new PinoNestLogger(logger));
  app.useGlobalFilters(new ProblemFilter());
  app.useGlobalPipes(createValidationPipe());
  // /docs serves the checked-in document itself, so the two cannot differ
  SwaggerModule.setup('docs', app, loadOpenApiDocument());

  await app.get(PrismaService).connect();
  await app.init();
  const brokerPorts = await app.get(BrokerService).start();
  await app.listen(config.httpPort, config.host);
  const address = app.getHttpServer().address();
  const http = typeof address === 'object' && address ? address.port : config.httpPort;
  return {
    app,
    ports: { ...brokerPorts, http },
    routes,
    close: () => app.close(),
  };
}
