import { validateTopicName } from './topics';

/** What the CONNECT hook should do with a CONNECT; null: nothing to object to. */
export type ConnectVerdict = { action: 'close' } | { action: 'connack'; returnCode: number } | null;

/** The CONNECT fields this check reads (aedes' ConnectPacket, as our parser fills it in). */
export interface ConnectFields {
  protocolId?: string;
  protocolVersion?: number;
  clientId?: string;
  clean?: boolean;
  will?: { topic?: unknown } | null;
}

export const CONNACK_UNACCEPTABLE_PROTOCOL_VERSION = 1;
export const CONNACK_IDENTIFIER_REJECTED = 2;

/**
 * Protocol rules of a CONNECT that the parser cannot decide alone (encoding, flags and
 * lengths are refused there already: see parser.ts). Call it first in preConnect, on the
 * packet as the device sent it (before the client id is namespaced):
 *
 * - protocol name and level must be a pair we speak, MQIsdp/3 or MQTT/4; anything else gets
 *   CONNACK 0x01 and a close [MQTT-3.1.2-2] (MQTT 5 included: aedes 1.x has no MQTT 5);
 * - MQTT 3.1 has no empty client id: CONNACK 0x02. In 3.1.1 an empty id needs clean
 *   session 1 [MQTT-3.1.3-7], otherwise CONNACK 0x02 [MQTT-3.1.3-8];
 * - the will topic must be a valid topic name: not empty, no wildcards [MQTT-3.1.3-11]
 *   [MQTT-3.3.2-2]; mosquitto closes without a CONNACK, and so do we.
 */
export function validateConnect(packet: ConnectFields): ConnectVerdict {
  const { protocolId, protocolVersion } = packet;
  const supported = (protocolId === 'MQIsdp' && protocolVersion === 3) || (protocolId === 'MQTT' && protocolVersion === 4);
  if (!supported) return { action: 'connack', returnCode: CONNACK_UNACCEPTABLE_PROTOCOL_VERSION };
  if (!packet.clientId) {
    if (protocolVersion === 3 || packet.clean !== true) {
      return { action: 'connack', returnCode: CONNACK_IDENTIFIER_REJECTED };
    }
  }
  if (packet.will && validateTopicName(packet.will.topic) !== null) return { action: 'close' };
  return null;
}
