import type { LoggerService } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger, type LevelWithSilent } from 'pino';

/**
 * Logging without AsyncLocalStorage. nestjs-pino binds each request's logger with
 * AsyncLocalStorage.run(), and on Node 20 the first run() turns on async hooks for the whole
 * process for good: every setImmediate, nextTick and promise of the MQTT hot path then pays
 * for context propagation (measured: ~20% of server CPU per delivered message in fan-in).
 * Request lines come from Fastify's own per-request child logger instead (it carries `reqId`),
 * and Nest's Logger writes to the same pino root.
 */
export function createRootLogger(level: string): Logger {
  return pino({
    level,
    // secrets never reach the log: no auth headers, no bodies (nothing here logs them; this
    // guards whatever a future line passes in)
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'], remove: true },
  });
}

/** Routes with no request line: probes and scrapes would drown everything else. */
const QUIET = (url: string): boolean => url.startsWith('/health') || url === '/metrics';

/** One line per answered request: method, url (no query), status, time; at info, or warn for 5xx. */
export function logRequests(fastify: FastifyInstance): void {
  fastify.addHook('onResponse', (request, reply, done) => {
    const url = request.url;
    if (!QUIET(url)) {
      const q = url.indexOf('?');
      const line = {
        req: { method: request.method, url: q < 0 ? url : url.slice(0, q) },
        res: { statusCode: reply.statusCode },
        responseTime: Math.round(reply.elapsedTime * 10) / 10,
      };
      if (reply.statusCode >= 500) request.log.warn(line, 'request failed');
      else request.log.info(line, 'request completed');
    }
    done();
  });
}

/** Nest's LoggerService over a pino logger; `context` (the Logger's name) becomes a field. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly root: Logger) {}

  log(message: unknown, ...rest: unknown[]): void {
    this.write('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  private write(level: Exclude<LevelWithSilent, 'silent'>, message: unknown, rest: unknown[]): void {
    if (!this.root.isLevelEnabled(level)) return;
    // Nest passes the context last; error() may pass a stack before it
    const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? (rest.pop() as string) : undefined;
    const fields: Record<string, unknown> = context === undefined ? {} : { context };
    if (level === 'error' && typeof rest[0] === 'string') fields.stack = rest[0];
    if (message instanceof Error) {
      fields.err = message;
      this.root[level](fields, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.root[level]({ ...fields, ...(message as Record<string, unknown>) });
    } else {
      this.root[level](fields, String(message));
    }
  }
}
