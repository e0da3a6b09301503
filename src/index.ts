/**
 * Worker entry: the HTTP API (src/api) and the Durable Objects: pools
 * (src/pool), the session registry (src/registry), tenants (src/tenant) and
 * the account's capacity governor (src/governor), and the recorders of
 * recorded leases (src/recorder).
 */
import { app } from "./api/app";

export { CapacityGovernor } from "./governor/object";
export { PoolObject } from "./pool/object";
export { LeaseRecorder } from "./recorder/object";
export { SessionRegistry } from "./registry/object";
export { TenantObject } from "./tenant/object";

export default app satisfies ExportedHandler<Env>;
