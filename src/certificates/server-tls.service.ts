import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ServerTlsMaterial, ServerTlsProvider } from '../broker/server-tls';
import { APP_CONFIG, AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../tenants/tenants.service';
import { SecretDecryptionError } from './master-key';
import { MasterKeyService } from './master-key.service';
import { pemFile } from './pem';
import { CertificateAuthorityPem, createCertificateAuthority, createServerCertificate, GeneratedCertificate } from './pki';

/** ServerSecret rows (values: JSON of StoredKeyPair); the names are also the encryption's associated data. */
export const SERVER_CA_SECRET = 'server-ca';
export const SERVER_CERTIFICATE_SECRET = 'server-certificate';
export const SERVER_CA_FILE_NAME = 'server-ca.crt';

const SERVER_CA_VALIDITY_DAYS = 3650;
const SERVER_CERTIFICATE_VALIDITY_DAYS = 825;
/** a stored server certificate closer than this to its end is replaced at start */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const HOSTNAME_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/;

interface StoredKeyPair {
  certificatePem: string;
  privateKeyEncrypted: string;
}

export interface ServerNames {
  hostnames: string[];
  ips: string[];
}

/**
 * The names the generated server certificate must carry on this node: localhost, the machine's
 * host name, the loopback addresses, and HOST when it is a specific address.
 */
export function serverNames(host: string, machineHostname: string = osHostname()): ServerNames {
  const hostnames = ['localhost'];
  const own = machineHostname.trim().toLowerCase();
  if (own.length <= 253 && HOSTNAME_RE.test(own) && !hostnames.includes(own)) hostnames.push(own);
  const ips = ['127.0.0.1', '::1'];
  if (isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' && !ips.includes(host)) ips.push(host);
  return { hostnames, ips };
}

/** DNS names and IP addresses in a certificate's subjectAltName (Node renders `DNS:a, IP Address:b`). */
function subjectAltNames(cert: X509Certificate): ServerNames {
  const out: ServerNames = { hostnames: [], ips: [] };
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:') && HOSTNAME_RE.test(entry.slice(4))) out.hostnames.push(entry.slice(4));
    else if (entry.startsWith('IP Address:') && isIP(entry.slice(11)) !== 0) out.ips.push(entry.slice(11));
  }
  return out;
}

/** The PEM certificate blocks of a file, in order. */
function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * The broker's TLS server certificate, for MQTTS and secure WebSockets.
 * - TLS_CERT/TLS_KEY set: those PEM files (TLS_CERT may hold the chain).
 * - Otherwise a server CA and a server certificate generated at the first start and kept in the
 *   database (private keys encrypted with MASTER_KEY), so every node of a cluster serves the
 *   same certificate under the same CA. A node whose names the stored certificate lacks (or that
 *   finds it near its end) issues a replacement under the same CA carrying every name.
 * The CA is also written to DATA_DIR/server-ca.crt and served at GET /api/v1/server-ca.
 */
@Injectable()
export class ServerTlsService implements ServerTlsProvider, OnModuleInit {
  private readonly logger = new Logger('ServerTls');
  private current?: ServerTlsMaterial;
  private caPem: string | null = null;
  private readonly changeListeners: ((material: ServerTlsMaterial) => void)[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly prisma: PrismaService,
    private readonly masterKey: MasterKeyService,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.load();
  }

  onChange(listener: (material: ServerTlsMaterial) => void): void {
    this.changeListeners.push(listener);
  }

  /**
   * Reads the server certificate again (main.ts does on SIGHUP, as Mosquitto 2 does): the
   * TLS_CERT/TLS_KEY files as they are now (renewed by certbot, say), or the generated one,
   * replaced when it is near its end. Files that are not a usable certificate and matching key
   * throw and leave the current certificate serving. Resolves to whether it changed.
   */
  async reload(): Promise<boolean> {
    const before = this.current;
    await this.load();
    const now = this.material();
    if (before !== undefined && before.certificatePem === now.certificatePem && before.privateKeyPem === now.privateKeyPem) return false;
    for (const listener of this.changeListeners) listener(now);
    return true;
  }

  private async load(): Promise<void> {
    if (this.config.tlsCert || this.config.tlsKey) {
      await this.loadFiles();
    } else {
      await this.loadGenerated(this.localNames());
    }
  }

  /** The names this node needs in the generated certificate. */
  localNames(): ServerNames {
    return serverNames(this.config.host);
  }

  material(): ServerTlsMaterial {
    if (!this.current) throw new Error('server TLS material not loaded');
    return this.current;
  }

  /** The CA that signed the server certificate (PEM), or null when TLS_CERT does not include it. */
  caCertificatePem(): string | null {
    return this.caPem;
  }

  private async loadFiles(): Promise<void> {
    const { tlsCert, tlsKey } = this.config;
    if (!tlsCert || !tlsKey) throw new Error('TLS_CERT and TLS_KEY must be set together');
    const [certificatePem, privateKeyPem] = await Promise.all([fs.readFile(tlsCert, 'utf8'), fs.readFile(tlsKey, 'utf8')]);
    try {
      createSecureContext({ cert: certificatePem, key: privateKeyPem });
    } catch (err) {
      throw new Error(`TLS_CERT/TLS_KEY are not a usable certificate and matching key: ${(err as Error).message}`);
    }
    const chain = pemCertificates(certificatePem);
    // the file's last certificate is the top of the chain it gives; a lone self-signed one is its own CA
    const top = chain.length ? new X509Certificate(chain[chain.length - 1]) : undefined;
    this.caPem = top && (chain.length > 1 || top.checkIssued(top)) ? top.toString() : null;
    this.current = { certificatePem, privateKeyPem };
  }

  private async loadGenerated(names: ServerNames): Promise<void> {
    const ca = await this.loadOrCreateCa();
    const server = await this.loadOrCreateServerCertificate(ca, names);
    this.current = server;
    this.caPem = ca.certificatePem;
    await writeIfChanged(join(this.config.dataDir, SERVER_CA_FILE_NAME), pemFile(ca.certificatePem));
  }

  private async loadOrCreateCa(): Promise<CertificateAuthorityPem> {
    const existing = await this.prisma.db.serverSecret.findUnique({ where: { name: SERVER_CA_SECRET } });
    if (existing) return this.decode(existing.value, SERVER_CA_SECRET);
    const ca = await createCertificateAuthority({
      commonName: 'MQTT broker server CA',
      keyAlgorithm: 'ec-p256',
      validityDays: SERVER_CA_VALIDITY_DAYS,
    });
    try {
      await this.prisma.db.serverSecret.create({ data: { name: SERVER_CA_SECRET, value: await this.encode(ca, SERVER_CA_SECRET) } });
      this.logger.log('generated the server CA');
      return ca;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // another node created it first: everyone uses that one
      const theirs = await this.prisma.db.serverSecret.findUniqueOrThrow({ where: { name: SERVER_CA_SECRET } });
      return this.decode(theirs.value, SERVER_CA_SECRET);
    }
  }

  private async loadOrCreateServerCertificate(ca: CertificateAuthorityPem, names: ServerNames): Promise<ServerTlsMaterial> {
    const caX509 = new X509Certificate(ca.certificatePem);
    // bounded: each round either returns or lost a race against another node's write
    for (let attempt = 0; attempt < 5; attempt++) {
      const row = await this.prisma.db.serverSecret.findUnique({ where: { name: SERVER_CERTIFICATE_SECRET } });
      let wanted = names;
      if (row) {
        const stored = await this.decode(row.value, SERVER_CERTIFICATE_SECRET);
        const cert = new X509Certificate(stored.certificatePem);
        const signedByCa = cert.checkIssued(caX509) && cert.verify(caX509.publicKey);
        const fresh = Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS;
        const missing = names.hostnames.some((h) => cert.checkHost(h) === undefined) || names.ips.some((ip) => cert.checkIP(ip) === undefined);
        if (signedByCa && fresh && !missing) return stored;
        // keep the names other nodes put in, so their clients still verify after they restart
        const previous = signedByCa ? subjectAltNames(cert) : { hostnames: [], ips: [] };
        wanted = {
          hostnames: [...new Set([...names.hostnames, ...previous.hostnames])],
          ips: [...new Set([...names.ips, ...previous.ips])],
        };
      }
      const issued = await createServerCertificate({
        ca,
        hostnames: wanted.hostnames,
        ips: wanted.ips,
        validityDays: SERVER_CERTIFICATE_VALIDITY_DAYS,
      });
      const value = await this.encode(issued, SERVER_CERTIFICATE_SECRET);
      if (row) {
        const { count } = await this.prisma.db.serverSecret.updateMany({
          where: { name: SERVER_CERTIFICATE_SECRET, value: row.value },
          data: { value },
        });
        if (count === 0) continue;
      } else {
        try {
          await this.prisma.db.serverSecret.create({ data: { name: SERVER_CERTIFICATE_SECRET, value } });
        } catch (err) {
          if (isUniqueViolation(err)) continue;
          throw err;
        }
      }
      this.logger.log(`issued the server certificate for ${[...wanted.hostnames, ...wanted.ips].join(', ')}`);
      return { certificatePem: issued.certificatePem, privateKeyPem: issued.privateKeyPem };
    }
    throw new Error('could not store the server certificate: it kept changing under concurrent starts');
  }

  private async encode(pair: GeneratedCertificate, name: string): Promise<string> {
    const stored: StoredKeyPair = {
      certificatePem: pair.certificatePem,
      privateKeyEncrypted: await this.masterKey.encrypt(pair.privateKeyPem, name),
    };
    return JSON.stringify(stored);
  }

  private async decode(value: string, name: string): Promise<ServerTlsMaterial & CertificateAuthorityPem> {
    const stored = JSON.parse(value) as StoredKeyPair;
    try {
      return { certificatePem: stored.certificatePem, privateKeyPem: await this.masterKey.decrypt(stored.privateKeyEncrypted, name) };
    } catch (err) {
      if (err instanceof SecretDecryptionError) {
        throw new Error(
          `MASTER_KEY cannot decrypt the ${name} key stored in the database: every node must use the MASTER_KEY ` +
            'the database was created with (when MASTER_KEY is unset, DATA_DIR/master.key is that key)',
        );
      }
      throw err;
    }
  }
}

/** Writes `content` to `file` unless it already holds it (atomically, through a temporary file). */
async function writeIfChanged(file: string, content: string): Promise<void> {
  const current = await fs.readFile(file, 'utf8').catch(() => null);
  if (current === content) return;
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, content, { mode: 0o644 });
  await fs.rename(tmp, file);
}
