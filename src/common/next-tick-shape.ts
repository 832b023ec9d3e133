import { createHook } from 'node:async_hooks';

/**
 * Keeps `process.nextTick` on V8's fast path for the life of the process. aedes, mqtt-packet
 * and Node's streams call it several times per MQTT message.
 *
 * nextTick builds each queued task as `{ [async_id_symbol]: id, [trigger_async_id_symbol]: id,
 * callback, args }`. V8 records, per property of that literal, the one hidden class (map) it
 * saw, and optimised code then adds the properties inline. Two things replace those maps for
 * good, and from then on the literal's feedback is megamorphic: every nextTick call goes
 * through V8's runtime (Runtime_DefineKeyedOwnPropertyInLiteral), about 10x its normal cost,
 * 5-8% of the broker's CPU under load:
 * - a few major GCs while no task object is alive (an idle moment; PGlite's start, with its
 *   large WebAssembly memory, triggers a run of them) collect the intermediate maps, which
 *   nothing else holds;
 * - the first id stored as a double where the maps expected small integers deprecates them.
 * Which of that happens, and when, varies from process to process: bare aedes and the service
 * on PostgreSQL hit it in some runs, the service on PGlite in every run we looked at.
 *
 * So, before anything else queues a task: take the first task object (through a one-off
 * async hook, the only public way to see it), store its ids back as doubles (the same values:
 * the maps settle on the double representation before any feedback is collected) and hold it
 * for the life of the process (its map keeps the whole chain of maps alive).
 * Verified with %DebugPrint(process.nextTick) (see next-tick-shape.spec.ts).
 */
export const heldTickObject: Record<symbol, unknown> | undefined = captureTickObject();

function captureTickObject(): Record<symbol, unknown> | undefined {
  let captured: Record<symbol, unknown> | undefined;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && captured === undefined) captured = resource as Record<symbol, unknown>;
    },
  });
  hook.enable();
  process.nextTick(() => undefined);
  hook.disable();
  if (captured === undefined) return undefined;
  const asDouble = new Float64Array(1);
  for (const key of Object.getOwnPropertySymbols(captured)) {
    const value = captured[key];
    if (typeof value !== 'number') continue;
    // a Float64Array element read in unoptimised code is a heap number, even for an integer
    asDouble[0] = value;
    captured[key] = asDouble[0];
  }
  return captured;
}
