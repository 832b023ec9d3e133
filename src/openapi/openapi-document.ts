import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { OpenAPIObject } from '@nestjs/swagger';
import { parse } from 'yaml';

/**
 * The checked-in openapi/openapi.yaml is the API's one description: /docs serves it as it is, and
 * test/openapi checks it against the routes the app registers and the responses it sends.
 */
export function openApiPath(): string {
  // __dirname differs between src/ (jest) and dist/src/ (node): search upwards
  for (let dir = __dirname, i = 0; i < 6; i++, dir = resolve(dir, '..')) {
    const candidate = join(dir, 'openapi', 'openapi.yaml');
    if (existsSync(candidate)) return candidate;
  }
  return resolve('openapi', 'openapi.yaml');
}

export function loadOpenApiDocument(): OpenAPIObject {
  return parse(readFileSync(openApiPath(), 'utf8')) as OpenAPIObject;
}
