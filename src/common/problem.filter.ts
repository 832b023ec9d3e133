import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AppError, ERROR_CODES, ErrorCode, FieldError } from './errors';

const STATUS_CODES: Record<number, ErrorCode> = Object.fromEntries(
  Object.entries(ERROR_CODES).map(([code, { status }]) => [status, code as ErrorCode]),
);

/** Renders every error as RFC 9457 application/problem+json. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    let code: ErrorCode = 'internal';
    let status = 500;
    let detail: string | undefined;
    let errors: FieldError[] | undefined;
    if (exception instanceof AppError) {
      code = exception.code;
      status = ERROR_CODES[code].status;
      detail = exception.detail;
      errors = exception.fieldErrors;
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      code = STATUS_CODES[status] ?? (status >= 500 ? 'internal' : 'bad-request');
      const body = exception.getResponse();
      detail = typeof body === 'string' ? body : String((body as { message?: unknown }).message ?? exception.message);
      // a body Fastify could not parse (malformed JSON...) reaches us as a plain 400: name the field
      if (status === 400) errors = [{ field: 'body', message: detail }];
    } else if (isFastifyError(exception)) {
      // body parser errors (malformed JSON, wrong content type, too large) come from Fastify itself
      status = exception.statusCode;
      code = STATUS_CODES[status] ?? (status >= 500 ? 'internal' : 'bad-request');
      detail = exception.message;
      if (status === 400 && code === 'bad-request') errors = [{ field: 'body', message: exception.message }];
    } else {
      this.logger.error(exception instanceof Error ? exception.stack : String(exception));
    }
    const title = code === 'bad-request' && status !== 400 ? `HTTP ${status}` : ERROR_CODES[code].title;
    void reply
      .status(status)
      .header('content-type', 'application/problem+json')
      .send({ type: `urn:problem:${code}`, title, status, ...(detail ? { detail } : {}), ...(errors ? { errors } : {}) });
  }
}

function isFastifyError(e: unknown): e is { statusCode: number; message: string } {
  return typeof e === 'object' && e !== null && typeof (e as { statusCode?: unknown }).statusCode === 'number';
}
