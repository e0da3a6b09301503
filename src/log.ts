/**
 * Structured logs: one JSON line per event (`{event, ...fields}`), so Workers
 * Logs can filter by any field. Used by the pool objects (lifecycle problems),
 * the CDP proxy and the tenant objects (the audit trail of key and quota changes).
 */
export function log(event: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ event, ...fields }));
}
