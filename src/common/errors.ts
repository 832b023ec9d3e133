import { HttpException } from '@nestjs/common';

export interface FieldError {
  field: string;
  message: string;
}

/**
 * Every error the API answers with has a stable code here; the problem+json filter renders it.
 * `type` in the body is `urn:problem:<code>`.
 */
export const ERROR_CODES = {
  'validation-failed': { status: 400, title: 'Request validation failed' },
  'bad-request': { status: 400, title: 'Bad request' },
  unauthorized: { status: 401, title: 'Missing or invalid credentials' },
  forbidden: { status: 403, title: 'Not allowed for this credential' },
  'not-found': { status: 404, title: 'Resource not found' },
  conflict: { status: 409, title: 'Resource already exists' },
  'payload-too-large': { status: 413, title: 'Payload too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'limit-exceeded': { status: 429, title: 'Limit exceeded' },
  'service-unavailable': { status: 503, title: 'Service unavailable' },
  internal: { status: 500, title: 'Internal server error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends HttpException {
  constructor(
    readonly code: ErrorCode,
    readonly detail?: string,
    readonly fieldErrors?: FieldError[],
  ) {
    super(detail ?? ERROR_CODES[code].title, ERROR_CODES[code].status);
  }
}

export const notFound = (what: string): AppError => new AppError('not-found', `${what} not found`);
export const conflict = (detail: string): AppError => new AppError('conflict', detail);
export const badField = (field: string, message: string): AppError =>
  new AppError('validation-failed', `${field}: ${message}`, [{ field, message }]);
