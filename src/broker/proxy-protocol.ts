import { isIPv4, isIPv6, type Server, type Socket, SocketAddress } from 'node:net';

/**
 * HAProxy's PROXY protocol (v1 text and v2 binary), for nodes behind a TCP load balancer: the
 * balancer's first bytes on each connection name the client's address, which the failed-login
 * lockout, the audit trail and the sessions list need. Without it every client has the
 * balancer's address, and ten failed logins from anyone lock every password login out.
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */

/** What the start of a connection holds: not enough yet, a header of `length` bytes, or no header. */
export type ProxyHeader =
  | { kind: 'incomplete' }
  | { kind: 'header'; length: number; address: string | null }
  | { kind: 'invalid'; reason: string };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** the longest v1 line the specification allows, CRLF included */
const V1_MAX_LENGTH = 107;
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v2 header and address block; TLVs beyond this are refused (HAProxy's with SSL details stay far below) */
const V2_MAX_LENGTH = 16 + 2048;
const PORT_RE = /^(0|[1-9][0-9]{0,4})$/;

const INCOMPLETE: ProxyHeader = { kind: 'incomplete' };
const invalid = (reason: string): ProxyHeader => ({ kind: 'invalid', reason });

/** `buf` (shorter than `prefix`) could still become `prefix` */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  return prefix.subarray(0, buf.length).equals(buf);
}

/** Parses the PROXY header at the start of `buf`; the client address is null for LOCAL and UNKNOWN. */
export function parseProxyHeader(buf: Buffer): ProxyHeader {
  if (buf.length < PROXY_V2_SIGNATURE.length && (startsLike(buf, PROXY_V2_SIGNATURE) || startsLike(buf, V1_PREFIX))) return INCOMPLETE;
  if (buf.subarray(0, PROXY_V2_SIGNATURE.length).equals(PROXY_V2_SIGNATURE)) return parseV2(buf);
  if (buf.subarray(0, V1_PREFIX.length).equals(V1_PREFIX)) return parseV1(buf);
  return invalid('no PROXY protocol header');
}

function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.subarray(0, V1_MAX_LENGTH).indexOf('\r\n', 0, 'latin1');
  if (end < 0) return buf.length < V1_MAX_LENGTH ? INCOMPLETE : invalid('PROXY v1 line too long');
  const fields = buf.toString('latin1', V1_PREFIX.length, end).split(' ');
  const length = end + 2;
  if (fields[0] === 'UNKNOWN') return { kind: 'header', length, address: null };
  if (fields.length !== 5 || (fields[0] !== 'TCP4' && fields[0] !== 'TCP6')) return invalid('malformed PROXY v1 line');
  const [family, source, destination, sourcePort, destinationPort] = fields;
  const isFamily = family === 'TCP4' ? isIPv4 : isIPv6;
  if (!isFamily(source) || !isFamily(destination) || !validPort(sourcePort) || !validPort(destinationPort)) {
    return invalid('malformed PROXY v1 line');
  }
  return { kind: 'header', length, address: family === 'TCP6' ? normalizeIPv6(source) : source };
}

function validPort(text: string): boolean {
  return PORT_RE.test(text) && Number(text) <= 65535;
}

function parseV2(buf: Buffer): ProxyHeader {
  if (buf.length < 16) return INCOMPLETE;
  const versionCommand = buf[12];
  if (versionCommand >> 4 !== 2) return invalid('unsupported PROXY protocol version');
  const command = versionCommand & 0x0f;
  const length = 16 + buf.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) return invalid('PROXY v2 header too long');
  if (buf.length < length) return INCOMPLETE;
  if (command === 0x0) return { kind: 'header', length, address: null }; // LOCAL: the balancer's own (health checks)
  if (command !== 0x1) return invalid('unsupported PROXY v2 command');
  const family = buf[13] >> 4;
  if (family === 0x1) {
    if (length < 16 + 12) return invalid('short PROXY v2 IPv4 address block');
    return { kind: 'header', length, address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}` };
  }
  if (family === 0x2) {
    if (length < 16 + 36) return invalid('short PROXY v2 IPv6 address block');
    const groups: string[] = [];
    for (let i = 16; i < 32; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
    return { kind: 'header', length, address: normalizeIPv6(groups.join(':')) };
  }
  // AF_UNSPEC or a Unix socket: no client address to speak of
  return { kind: 'header', length, address: null };
}

/** The form Node gives a socket's remoteAddress (compressed, lower case). */
function normalizeIPv6(address: string): string {
  return new SocketAddress({ address, family: 'ipv6' }).address;
}

let refused = 0;
/**
 * Connections closed for want of a valid PROXY header in time (mqtt_proxy_header_refused_total):
 * a balancer not sending it, or someone reaching the MQTT ports around the balancer.
 */
export function proxyHeaderRefusals(): number {
  return refused;
}

/** The client address a PROXY header named, per connection (the raw TCP socket). */
const proxiedAddresses = new WeakMap<Socket, string>();

/** The client address the balancer named for `socket` (or for the TCP socket a TLS socket wraps). */
export function proxiedAddressOf(socket: object): string | undefined {
  const raw = (socket as { _parent?: unknown })._parent ?? socket;
  return proxiedAddresses.get(raw as Socket);
}

/**
 * Reads the PROXY header from a new connection, then hands the connection on (`next`) with the
 * bytes after the header put back and the client's address recorded for proxiedAddressOf. A
 * connection that starts with anything else, or sends no complete header within `timeoutMs`, is
 * closed: with PROXY_PROTOCOL on, only the balancer may connect.
 */
export function acceptProxied(socket: Socket, timeoutMs: number, next: (socket: Socket) => void): void {
  let buffered: Buffer | null = null;
  const done = (): void => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('close', done);
  };
  const onError = (): void => {
    done();
    socket.destroy();
  };
  const onTimeout = (): void => {
    refused++;
    onError();
  };
  const onData = (chunk: Buffer): void => {
    buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
    const header = parseProxyHeader(buffered);
    if (header.kind === 'incomplete') return;
    done();
    socket.pause();
    if (header.kind === 'invalid') {
      refused++;
      socket.destroy();
      return;
    }
    if (header.address !== null) proxiedAddresses.set(socket, header.address);
    if (buffered.length > header.length) socket.unshift(buffered.subarray(header.length));
    next(socket);
    // paused above so nothing flows past before `next` listens: aedes reads on 'readable' and a
    // TLS socket takes the bytes itself, but the HTTP parser listens for 'data' and needs the flow
    if (socket.listenerCount('data') > 0) socket.resume();
  };
  const timer = setTimeout(onTimeout, timeoutMs);
  socket.on('error', onError);
  // gone before its header: no timer left holding it
  socket.on('close', done);
  socket.on('data', onData);
}

/**
 * Makes `server` (net, TLS, HTTP or HTTPS) read the PROXY header of each connection before its
 * own connection listeners (TLS handshake, HTTP parser, the MQTT handler) see the connection.
 */
export function requireProxyHeader(server: Server, timeoutMs: number): void {
  const listeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) =>
    acceptProxied(socket, timeoutMs, (proxied) => {
      for (const listener of listeners) listener.call(server, proxied);
    }),
  );
}
