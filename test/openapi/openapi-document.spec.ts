import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { startTestApp, TestApp } from '../helpers/app';
import { HTTP_METHODS, openApiDocument, toTemplate } from '../helpers/openapi';

/**
 * openapi/openapi.yaml is checked in and served at /docs as it is. This holds it to the app:
 * every route the app registers is documented, every documented operation exists, and the
 * document itself is sound. (That responses match their schemas is checked on every request the
 * e2e suites make, in test/helpers/app.ts.)
 */

// Swagger UI's own files under /docs/ are the viewer, not the API
const isDocsAsset = (url: string) => url.startsWith('/docs/') || url === '/docs/*';


describe('openapi/openapi.yaml', () => {
  let app: TestApp;
  const doc = openApiDocument();

  beforeAll(async () => {
    app = await startTestApp();
  });

  afterAll(async () => {
    await app?.close();
  });

  const registered = () =>
    new Set(
      app.running.routes
        .filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS' && !isDocsAsset(r.url))
        .map((r) => `${r.method} ${toTemplate(r.url)}`),
    );

  /** operations marked `x-planned: true` are contract for routes still being built */
  const documented = (which: 'all' | 'planned' | 'served' = 'all') => {
    const out = new Set<string>();
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const m of HTTP_METHODS) {
        const op = item[m];
        if (!op || (which === 'planned' && op['x-planned'] !== true) || (which === 'served' && op['x-planned'] === true)) continue;
        out.add(`${m.toUpperCase()} ${path}`);
      }
    }
    return out;
  };

  it('documents every route the app registers', () => {
    const missing = [...registered()].filter((r) => !documented().has(r)).sort();
    if (missing.length) {
      throw new Error(
        `${missing.length} route(s) registered by the app but missing from openapi/openapi.yaml ` +
          `(add each under paths, with its parameters, request body and every response):\n  ${missing.join('\n  ')}`,
      );
    }
  });

  it('drops the x-planned mark once the route exists', () => {
    const served = [...documented('planned')].filter((r) => registered().has(r)).sort();
    if (served.length) {
      throw new Error(
        `${served.length} operation(s) marked x-planned in openapi/openapi.yaml are now registered by the app ` +
          `(remove "x-planned: true" and check the operation against the code):\n  ${served.join('\n  ')}`,
      );
    }
  });

  it('documents no route the app does not have', () => {
    const extra = [...documented('served')].filter((r) => !registered().has(r)).sort();
    if (extra.length) {
      throw new Error(
        `${extra.length} operation(s) in openapi/openapi.yaml that the app does not register ` +
          `(remove them, or fix the path or method):\n  ${extra.join('\n  ')}`,
      );
    }
  });

  it('is OpenAPI 3.1 whose schemas all compile and whose references all resolve', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    ajv.addSchema(doc, 'openapi');
    const problems: string[] = [];
    for (const name of Object.keys(doc.components.schemas)) {
      try {
        ajv.getSchema(`openapi#/components/schemas/${name}`);
      } catch (err) {
        problems.push(`components.schemas.${name}: ${(err as Error).message}`);
      }
    }
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const ref of new Set(refs)) {
      const target = ref.slice(8, -1);
      const resolved = target
        .slice(2)
        .split('/')
        .reduce((o: any, k: string) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      if (!target.startsWith('#/') || resolved === undefined) problems.push(`unresolved $ref ${target}`);
    }
    expect(problems).toEqual([]);
  });

  it('has examples that match their schemas', () => {
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    ajv.addSchema(doc, 'openapi');
    const problems: string[] = [];
    const check = (pointer: string, example: unknown) => {
      const validate = ajv.getSchema(`openapi#${pointer}`);
      if (validate && !validate(example)) problems.push(`${pointer}: ${JSON.stringify(validate.errors?.slice(0, 2))}`);
    };
    const esc = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');
    for (const [name, schema] of Object.entries<any>(doc.components.schemas)) {
      for (const ex of schema.examples ?? []) check(`/components/schemas/${name}`, ex);
    }
    const media = (base: string, content: Record<string, any> | undefined) => {
      for (const [type, m] of Object.entries<any>(content ?? {})) {
        if (!m.schema) continue;
        const at = `${base}/content/${esc(type)}/schema`;
        if (m.example !== undefined) check(at, m.example);
        for (const ex of Object.values<any>(m.examples ?? {})) check(at, ex.value);
      }
    };
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const m of HTTP_METHODS) {
        const op = item[m];
        if (!op) continue;
        const base = `/paths/${esc(path)}/${m}`;
        media(`${base}/requestBody`, op.requestBody?.content);
        for (const [code, r] of Object.entries<any>(op.responses)) if (!r.$ref) media(`${base}/responses/${code}`, r.content);
      }
    }
    for (const [name, r] of Object.entries<any>(doc.components.responses)) media(`/components/responses/${name}`, r.content);
    expect(problems).toEqual([]);
  });

  it('gives every operation an id, a summary, its path parameters, and its error responses', () => {
    const problems: string[] = [];
    const ids = new Set<string>();
    const resolve = (p: any) => (p.$ref ? p.$ref.split('/').slice(1).reduce((o: any, k: string) => o[k], doc) : p);
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      const pathParams = (path.match(/\{([^}]+)\}/g) ?? []).map((s) => s.slice(1, -1));
      for (const m of HTTP_METHODS) {
        const op = item[m];
        if (!op) continue;
        const where = `${m.toUpperCase()} ${path}`;
        if (!op.operationId) problems.push(`${where}: no operationId`);
        else if (ids.has(op.operationId)) problems.push(`${where}: duplicate operationId ${op.operationId}`);
        ids.add(op.operationId);
        if (!op.summary) problems.push(`${where}: no summary`);
        const declared = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolve);
        for (const name of pathParams) {
          if (!declared.some((p: any) => p.in === 'path' && p.name === name && p.required === true)) {
            problems.push(`${where}: path parameter {${name}} is not declared (required, in: path)`);
          }
        }
        const secured = !(Array.isArray(op.security) && op.security.length === 0);
        if (secured && !op.responses['401']) problems.push(`${where}: authenticated, but no 401 response`);
        if (path.includes('{') && path.startsWith('/api/') && !op.responses['404']) problems.push(`${where}: no 404 response`);
        if (op.requestBody && !op.responses['400']) problems.push(`${where}: takes a body, but no 400 response`);
        if (!Object.keys(op.responses).some((c) => /^2/.test(c))) problems.push(`${where}: no success response`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('is what /docs serves', async () => {
    const json = await app.api('GET', '/docs-json', undefined, null);
    expect(json.status).toBe(200);
    expect(json.body).toEqual(doc);
    const yaml = await app.api('GET', '/docs-yaml', undefined, null);
    expect(yaml.status).toBe(200);
    expect(parse(yaml.body)).toEqual(doc);
    const html = await app.api('GET', '/docs', undefined, null);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/text\/html/);
  });
});
