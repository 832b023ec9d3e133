import { parseProxyHeader, PROXY_V2_SIGNATURE as SIGNATURE } from './proxy-protocol';
import { proxyV2Header as v2 } from './proxy-protocol.test-helper';

const ipv4Block = Buffer.from([203, 0, 113, 7, 10, 0, 0, 1, 0x9c, 0x40, 0x07, 0x5b]);
const ipv6Block = Buffer.concat([
  Buffer.from('20010db8000000000000000000000005', 'hex'),
  Buffer.from('20010db8000000000000000000000001', 'hex'),
  Buffer.from([0x9c, 0x40, 0x07, 0x5b]),
]);

describe('parseProxyHeader', () => {
  it('reads v1 TCP4 and TCP6 lines, the IPv6 address in the form Node gives a socket', () => {
    const line = Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 40000 1883\r\n');
    expect(parseProxyHeader(Buffer.concat([line, Buffer.from([0x10, 0x0c])]))).toEqual({ kind: 'header', length: line.length, address: '203.0.113.7' });
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0::5 2001:db8::1 40000 1883\r\n'))).toMatchObject({ address: '2001:db8::5' });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 whatever\r\n'))).toMatchObject({ kind: 'header', address: null });
  });

  it('reads v2 PROXY over IPv4 and IPv6 (TLVs skipped), and LOCAL without an address', () => {
    const withTlv = v2(0x1, 0x1, ipv4Block, Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb]));
    expect(parseProxyHeader(Buffer.concat([withTlv, Buffer.from('rest')]))).toEqual({ kind: 'header', length: withTlv.length, address: '203.0.113.7' });
    expect(parseProxyHeader(v2(0x1, 0x2, ipv6Block))).toMatchObject({ kind: 'header', length: 16 + 36, address: '2001:db8::5' });
    expect(parseProxyHeader(v2(0x0, 0x0, Buffer.alloc(0)))).toEqual({ kind: 'header', length: 16, address: null });
  });

  it('waits for the rest of a header that has only partly arrived', () => {
    const line = Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 40000 1883\r\n');
    const header = v2(0x1, 0x2, ipv6Block);
    for (const whole of [line, header]) {
      for (let n = 1; n < whole.length; n++) expect(parseProxyHeader(whole.subarray(0, n))).toEqual({ kind: 'incomplete' });
    }
  });

  it('refuses anything else: MQTT without a header, malformed lines and addresses, oversized headers', () => {
    const refused = (buf: Buffer) => expect(parseProxyHeader(buf)).toMatchObject({ kind: 'invalid' });
    refused(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51]));
    refused(Buffer.from('GET /mqtt HTTP/1.1\r\n'));
    refused(Buffer.from('PROXY TCP4 999.0.113.7 10.0.0.1 40000 1883\r\n'));
    refused(Buffer.from('PROXY TCP4 2001:db8::5 10.0.0.1 40000 1883\r\n'));
    refused(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 70000 1883\r\n'));
    refused(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 40000\r\n'));
    refused(Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`));
    refused(Buffer.concat([SIGNATURE, Buffer.from([0x10, 0x11, 0x00, 0x0c]), ipv4Block])); // version 1 in a v2 header
    refused(Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])])); // 64 KiB of TLVs
    refused(v2(0x1, 0x1, ipv4Block.subarray(0, 8)));
  });
});
