import Ajv2020, { ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { loadOpenApiDocument } from '../../src/openapi/openapi-document';

/**
 * openapi/openapi.yaml as the tests use it: which documented operation a request hits, and
 * whether a response matches what the document promises for it (status, media type, schema).
 */

type Json = any;

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'] as const;

interface Template {
  path: string;
  regex: RegExp;
  params: number;
}

let cached: { doc: Json; ajv: Ajv2020; templates: Template[]; validators: Map<string, ValidateFunction> } | undefined;

function state() {
  if (cached) return cached;
  const doc = loadOpenApiDocument() as Json;
  // the whole document is registered once; response schemas are compiled by JSON pointer, so
  // their `#/components/...` references resolve against the document
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, 'openapi');
  const templates = Object.keys(doc.paths ?? {})
    .map((path) => ({
      path,
      // a parameter is one path segment: percent-encoded slashes (`a%2Fb`) stay inside it
      regex: new RegExp('^' + path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
      params: (path.match(/\{/g) ?? []).length,
    }))
    // literal paths win over templated ones
    .sort((a, b) => a.params - b.params);
  cached = { doc, ajv, templates, validators: new Map() };
  return cached;
}

export function openApiDocument(): Json {
  return state().doc;
}

/** The documented path template a concrete (still percent-encoded) path falls under. */
export function matchPath(rawPath: string): string | undefined {
  const path = rawPath.split('?')[0];
  return state().templates.find((t) => t.regex.test(path))?.path;
}

const pointer = (...parts: string[]) => '#/' + parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

function deref(doc: Json, node: Json): { node: Json; at?: string } {
  if (node && typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
    const at = node.$ref;
    const target = at
      .slice(2)
      .split('/')
      .reduce((o: Json, k: string) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    return { node: target, at };
  }
  return { node };
}

/**
 * Why this response does not match the document, or null when it does (or when the request hit
 * no documented operation: the route-coverage test is what reports undocumented routes).
 */
export function responseMismatch(
  method: string,
  rawPath: string,
  status: number,
  contentType: string | null,
  body: unknown,
): string | null {
  const { doc, ajv, validators } = state();
  const template = matchPath(rawPath);
  if (!template) return null;
  const m = method.toLowerCase();
  const operation = doc.paths[template][m];
  if (!operation) return null;
  const where = `${method.toUpperCase()} ${template}`;
  const code = String(status);
  const declared = operation.responses?.[code] ?? operation.responses?.default;
  if (!declared) {
    return `${where} answered ${status}, which openapi/openapi.yaml does not list for it (documented: ${Object.keys(operation.responses ?? {}).join(', ')}); body: ${JSON.stringify(body)}`;
  }
  const { node: response, at } = deref(doc, declared);
  const responsePointer = at ?? pointer('paths', template, m, 'responses', operation.responses[code] ? code : 'default');
  const content = response.content as Record<string, Json> | undefined;
  const empty = body === undefined || body === null || body === '';
  if (!content) {
    return empty ? null : `${where} ${status}: the document promises no body, got ${JSON.stringify(body).slice(0, 200)}`;
  }
  const mediaType = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (!(mediaType in content)) {
    return `${where} ${status}: content-type "${mediaType}" is not one the document lists (${Object.keys(content).join(', ')})`;
  }
  if (!content[mediaType].schema) return null;
  const schemaPointer = `openapi${responsePointer}/content/${mediaType.replace(/~/g, '~0').replace(/\//g, '~1')}/schema`;
  let validate = validators.get(schemaPointer);
  if (!validate) {
    validate = ajv.getSchema(schemaPointer);
    if (!validate) return `${where} ${status}: cannot compile the schema at ${schemaPointer}`;
    validators.set(schemaPointer, validate);
  }
  if (validate(body)) return null;
  const errors = (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '(body)'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`)
    .join('; ');
  return `${where} ${status}: the body does not match openapi/openapi.yaml: ${errors}; body: ${JSON.stringify(body).slice(0, 500)}`;
}

/** Fastify's `/a/:b` as OpenAPI's `/a/{b}`. */
export const toTemplate = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/**
 * Whether the running app registers this documented operation: operations marked `x-planned`
 * (contract for routes still being built) are skipped by the suites until it does.
 */
export function isServed(routes: readonly { method: string; url: string }[], method: string, template: string): boolean {
  return routes.some((r) => r.method === method.toUpperCase() && toTemplate(r.url) === template);
}
