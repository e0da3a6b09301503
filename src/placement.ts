/**
 * Placement: where a pool's Durable Object lives. A Durable Object is created
 * near the first request that reaches it and never moves, unless that first
 * `get()` carries a location hint (one of the platform's regions below); the
 * platform treats the hint as best effort. So a pool's placement is decided
 * once, when it is created, and a pool records the hint it was created with
 * (`locationHint` in its config) so that a later request asking for another
 * place is refused rather than silently served from where the pool is.
 *
 * Steel's `region` on `POST /v1/sessions` names a place in Steel's terms (an
 * airport code); `REGION_HINTS` maps each to the location hint nearest it.
 *
 * Neutral: the pool's config (src/pool) and the HTTP layer both use it.
 */
import type { Failure } from "./result";

/** The platform's location hints (Durable Objects, "Data location"). */
export const LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const satisfies readonly DurableObjectLocationHint[];

export type LocationHint = (typeof LOCATION_HINTS)[number];

/** Steel's regions, each with the location hint nearest it. */
export const REGION_HINTS = {
  lax: "wnam",
  ord: "enam",
  iad: "enam",
  scl: "sam",
  fra: "weur",
  nrt: "apac",
} as const satisfies Record<string, LocationHint>;

export type SteelRegion = keyof typeof REGION_HINTS;

export const STEEL_REGIONS = Object.keys(REGION_HINTS) as SteelRegion[];

/** The location hint for one of Steel's regions; throws for a region that is not one (validate with STEEL_REGIONS first). */
export function regionHint(region: string): LocationHint {
  const hint = (REGION_HINTS as Record<string, LocationHint>)[region];
  if (!hint) throw new RangeError(`unknown region ${region}: one of ${STEEL_REGIONS.join(", ")}`);
  return hint;
}

/**
 * Whether an existing pool (created with `configured`, null for none) can be
 * served as `wanted` asks (null: no hint): only if it was created with that
 * very hint, since it never moves. `asked` says in the caller's words what
 * asked for it (e.g. "locationHint weur", "region fra (weur)"). Answers the
 * 409 to give, or undefined when the placement matches.
 */
export function placementConflict(pool: string, configured: string | null, wanted: LocationHint | null, asked: string): Failure | undefined {
  if (configured === wanted) return undefined;
  const where = configured === null ? "without a locationHint (near its first request)" : `with locationHint ${configured}`;
  return {
    status: 409,
    code: "placement_fixed",
    detail: `pool ${pool} was created ${where}, and ${asked} asks for ${wanted ?? "none"}: a pool's Durable Object never moves, so its placement is fixed when it is created. Leave the hint out to use the pool where it is, or create a pool (or namespace) of another name with the hint`,
  };
}
