import { PROXY_V2_SIGNATURE } from './proxy-protocol';

/**
 * A PROXY v2 header as a balancer writes it: `command` 0x1 PROXY or 0x0 LOCAL, `family` 0x1 IPv4
 * or 0x2 IPv6 (TCP), then the address block (source, destination, ports) and any TLVs.
 */
export function proxyV2Header(command: number, family: number, addresses: Buffer, tlvs = Buffer.alloc(0)): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(addresses.length + tlvs.length);
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20 | command, (family << 4) | 0x1]), length, addresses, tlvs]);
}
