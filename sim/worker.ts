/**
 * The sizing simulator's Worker, bundled and run in workerd by
 * scripts/simulate.mjs (never deployed). `POST /` with the engine's options
 * runs one simulation in a fresh `Simulator` object, whose SQLite holds only
 * that run's pool, and answers with newline-delimited JSON: `{"progress": …}`
 * lines while it runs, then `{"result": …}` (or `{"error": …}`).
 */
import { DurableObject } from "cloudflare:workers";
import { simulate, type SimOptions } from "./engine";

interface Env {
  SIMULATOR: DurableObjectNamespace<Simulator>;
}

/** The options as JSON carries them: the engine's, with a progress interval instead of a callback. */
export type SimRequest = Omit<SimOptions, "progress"> & { progressEvery?: number };

export class Simulator extends DurableObject<Env> {
  override async fetch(request: Request): Promise<Response> {
    const { progressEvery, ...options } = await request.json<SimRequest>();
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const encoder = new TextEncoder();
    const line = (value: unknown) => writer.write(encoder.encode(`${JSON.stringify(value)}\n`));
    // The engine runs synchronously between reports: a report yields to the event loop so its line leaves now, not at the end.
    const report = async (progress: unknown) => {
      await line({ progress });
      await new Promise((resolve) => setTimeout(resolve, 0));
    };
    const run = async () => {
      try {
        const result = await simulate(this.ctx.storage, {
          ...options,
          ...(progressEvery ? { progress: { every: progressEvery, report } } : {}),
        });
        await line({ result });
      } catch (error) {
        await line({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      } finally {
        await writer.close();
      }
    };
    this.ctx.waitUntil(run());
    return new Response(readable, { headers: { "content-type": "application/x-ndjson" } });
  }
}

export default {
  // A new object per run: its storage starts empty.
  fetch: (request, env) => env.SIMULATOR.get(env.SIMULATOR.newUniqueId()).fetch(request),
} satisfies ExportedHandler<Env>;
