import type { TlsOptions } from 'node:tls';

/** The broker's TLS server certificate and key (PEM), whatever produced them. */
export interface ServerTlsMaterial {
  certificatePem: string;
  privateKeyPem: string;
}

/** Implemented by the control plane (TLS_CERT/TLS_KEY files, or the generated certificate). */
export interface ServerTlsProvider {
  material(): ServerTlsMaterial;
  /** `listener` gets the new material each time it changes (a reload on SIGHUP). */
  onChange(listener: (material: ServerTlsMaterial) => void): void;
}

export const SERVER_TLS = Symbol('SERVER_TLS');

/**
 * Options shared by MQTTS and secure WebSockets. Client certificates are requested but not
 * checked by the handshake (`rejectUnauthorized: false`): the CONNECT hook verifies them
 * against the CA of the tenant that issued them, so the handshake neither needs every tenant
 * CA nor lists their names to anonymous peers (TOOLCHAIN.md §4, approach B).
 */
export function serverTlsOptions(material: ServerTlsMaterial, handshakeTimeoutMs: number): TlsOptions & { noDelay: boolean } {
  return {
    key: material.privateKeyPem,
    cert: material.certificatePem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    handshakeTimeout: handshakeTimeoutMs,
    noDelay: true,
  };
}
