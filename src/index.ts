/**
 * Worker entry: the HTTP API (src/api) and the pool Durable Object (src/pool).
 */
import { app } from "./api/app";

export { PoolObject } from "./pool/object";
export { SessionRegistry } from "./registry/object";
export { TenantObject } from "./tenant/object";

export default app satisfies ExportedHandler<Env>;
