import { ValidationError, ValidationPipe } from '@nestjs/common';
import { AppError, FieldError } from './errors';

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors) {
    const field = parent ? `${parent}.${e.property}` : e.property;
    for (const message of Object.values(e.constraints ?? {})) {
      // class-validator prefixes messages with the property path; keep the message itself short
      out.push({ field, message: message.replace(/^property /, '') });
    }
    if (e.children?.length) out.push(...flatten(e.children, field));
  }
  return out;
}

/** Unknown fields are a 400, and every error names its field (problem+json `errors`). */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    exceptionFactory: (errors) => {
      const fieldErrors = flatten(errors);
      return new AppError('validation-failed', fieldErrors.map((e) => `${e.field}: ${e.message}`).join('; '), fieldErrors);
    },
  });
}
