/**
 * What a write route changed, as the audit log names it, derived from the route template:
 *
 *   POST   /api/v1/tenants                                   tenant.create        (target null)
 *   PATCH  /api/v1/tenants/:slug                             tenant.update
 *   POST   /api/v1/tenants/:slug/devices                     device.create        devices/<name>
 *   PATCH  /api/v1/tenants/:slug/devices/:name               device.update        devices/<name>
 *   POST   /api/v1/tenants/:slug/devices/:name/password      device.password      devices/<name>
 *   POST   .../devices/:name/certificates/:id/revoke         certificate.revoke   devices/<name>/certificates/<id>
 *   DELETE /api/v1/tenants/:slug/sessions/:clientId          session.delete       sessions/<clientId>
 *   POST   /api/v1/tenants/:slug/publish                     tenant.publish
 *
 * A trailing segment that is a verb (ACTIONS) names the action on the resource before it; any
 * other trailing segment is a collection (POST creates: the new resource's name or id is read
 * from the response). The target is the resource's path below its tenant.
 */
export const ACTIONS = new Set(['password', 'revoke', 'publish', 'rotate', 'kick']);

/** Body fields never copied into the trail. */
const SECRET_FIELDS = new Set(['password', 'key', 'token', 'secret', 'privateKey', 'privateKeyPem', 'csr']);

export interface RestChange {
  type: string;
  target: string | null;
}

export function describeRestChange(
  method: string,
  routeTemplate: string,
  params: Record<string, string | undefined>,
  response: unknown,
): RestChange | null {
  const path = routeTemplate.replace(/^\/?api\/v1\/?/, '');
  if (path === routeTemplate) return null;
  const segments = path.split('/').filter((s) => s !== '');
  const resources: { collection: string; id?: string }[] = [];
  let action: string | undefined;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    if (seg.startsWith(':')) continue;
    const next = segments[i + 1];
    if (next?.startsWith(':')) resources.push({ collection: seg, id: params[next.slice(1)] });
    else if (i === segments.length - 1 && ACTIONS.has(seg) && resources.length > 0) action = seg;
    else resources.push({ collection: seg });
  }
  const last = resources[resources.length - 1];
  if (last === undefined) return null;
  let verb: string;
  if (action !== undefined) verb = action;
  else if (last.id !== undefined || method === 'PATCH' || method === 'PUT') verb = method === 'DELETE' ? 'delete' : 'update';
  else if (method === 'POST') {
    verb = 'create';
    last.id = createdId(response);
  } else verb = 'delete';
  // the first resource is the tenant itself, named by the URL the events are listed under
  const below = resources[0]?.collection === 'tenants' ? resources.slice(1) : resources;
  const target = below.map((r) => (r.id !== undefined ? `${r.collection}/${r.id}` : r.collection)).join('/');
  return { type: `${singular(last.collection)}.${verb}`, target: target === '' ? null : target };
}

/** The request body as the trail keeps it: secrets left out, payloads reduced to their size. */
export function auditDetail(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (SECRET_FIELDS.has(k)) out[k] = '[redacted]';
    else if (k === 'payload') out.payloadLength = typeof v === 'string' ? v.length : 0;
    else out[k] = v;
  }
  return out;
}

function createdId(response: unknown): string | undefined {
  if (response === null || typeof response !== 'object') return undefined;
  const r = response as Record<string, unknown>;
  for (const k of ['id', 'name', 'clientId', 'slug']) if (typeof r[k] === 'string') return r[k];
  return undefined;
}

function singular(collection: string): string {
  return collection.endsWith('s') ? collection.slice(0, -1) : collection;
}
