import mqtt, { type MqttClient } from 'mqtt';

/** A tenant's publisher and subscriber, connected throughout: every message must arrive, in order. */
export class Watch {
  sent = 0;
  readonly received: number[] = [];
  foreign = 0;
  disconnects = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly name: string,
    private readonly pub: MqttClient,
    private readonly sub: MqttClient,
  ) {
    sub.on('message', (topic, payload) => {
      if (topic !== 'watch/seq' || !payload.toString().startsWith(name + ':')) this.foreign++;
      else this.received.push(Number(payload.toString().slice(name.length + 1)));
    });
    for (const c of [pub, sub]) c.on('close', () => this.disconnects++);
  }

  start(everyMs: number): void {
    clearInterval(this.timer);
    this.sent = 0;
    this.received.length = 0;
    this.timer = setInterval(() => {
      this.pub.publish('watch/seq', `${this.name}:${this.sent++}`, { qos: 1 });
    }, everyMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const until = Date.now() + 15_000;
    while (this.received.length < this.sent && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  }

  async end(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([this.pub.endAsync(), this.sub.endAsync()]);
  }

  /** A publisher and a subscriber (of `#`, QoS 1) of one tenant, logged in as `username`. */
  static async connect(url: string, name: string, username: string, password: string): Promise<Watch> {
    const opts = { username, password, reconnectPeriod: 0, keepalive: 30 };
    const sub = await mqtt.connectAsync(url, { ...opts, clientId: `${name}-sub` });
    await sub.subscribeAsync('#', { qos: 1 });
    const pub = await mqtt.connectAsync(url, { ...opts, clientId: `${name}-pub` });
    return new Watch(name, pub, sub);
  }
}
