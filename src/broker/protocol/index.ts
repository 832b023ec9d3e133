export { hardenClient, setMaxPacketSize, droppedMessages, type HardenOptions, type HardenableClient, type DropReason } from './harden';
export { validateConnect, type ConnectVerdict, type ConnectFields } from './validate-connect';
export { validateTopicName, validateTopicFilter, MAX_TOPIC_LEVELS } from './topics';
export { decodeMqttString, isValidMqttString } from './strings';
