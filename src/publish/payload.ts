import { isUtf8 } from 'node:buffer';
import { badField } from '../common/errors';
import type { PayloadEncoding } from './publish.dto';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of a REST payload; base64 must be canonical (padded, standard alphabet). */
export function decodePayload(payload: string, encoding: PayloadEncoding, field = 'payload'): Buffer {
  if (encoding === 'utf8') return Buffer.from(payload, 'utf8');
  if (!BASE64.test(payload)) throw badField(field, 'is not valid base64 (standard alphabet, padded)');
  return Buffer.from(payload, 'base64');
}

/** How a stored payload is shown: as text when it is valid UTF-8, else as base64. */
export function encodePayload(payload: Buffer): { payload: string; encoding: PayloadEncoding } {
  return isUtf8(payload)
    ? { payload: payload.toString('utf8'), encoding: 'utf8' }
    : { payload: payload.toString('base64'), encoding: 'base64' };
}
