/**
 * MQTT UTF-8 strings [MQTT-1.5.3].
 *
 * A string on the wire must be well-formed UTF-8 (no overlong forms, no UTF-16 surrogates
 * U+D800..U+DFFF) [MQTT-1.5.3-1] and must not contain U+0000 [MQTT-1.5.3-2]. Control
 * characters (U+0001..U+001F, U+007F..U+009F) and non-characters "SHOULD NOT" appear and a
 * receiver "MAY close the Network Connection" when they do; like mosquitto, we close: they
 * have no business in a topic, a client id or a username, and refusing them keeps log lines,
 * ACL patterns and the REST API free of invisible characters.
 */

// Buffer#toString('utf8') replaces malformed input with U+FFFD; a fatal decoder refuses it.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// \p{Cc} is exactly U+0000..U+001F and U+007F..U+009F.
const FORBIDDEN = /[\p{Cc}\p{Noncharacter_Code_Point}]/u;

/**
 * Decodes an MQTT string, or returns null when it is not an acceptable one.
 * Printable ASCII (the common case: topics, ids) never reaches the decoder.
 */
export function decodeMqttString(buf: Uint8Array): string | null {
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const b = buf[i];
    if (b < 0x20 || b > 0x7e) break;
    i++;
  }
  if (i === n) return latin1(buf);
  let text: string;
  try {
    text = decoder.decode(buf);
  } catch {
    return null;
  }
  return FORBIDDEN.test(text) ? null : text;
}

function latin1(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('latin1');
}

/** True when the JavaScript string could be sent as an MQTT string (used for values not read off the wire). */
export function isValidMqttString(text: string): boolean {
  if (FORBIDDEN.test(text)) return false;
  // lone surrogates cannot be encoded as UTF-8
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text) &&
    Buffer.byteLength(text, 'utf8') <= 0xffff;
}
