/**
 * Operators' view and control of the account's capacity: the limits the
 * capacity governor (src/governor) grants launches within, how much of them
 * is used, its breaker, and each active tenant's weight and fair share.
 * Mounted by app.ts under /v1/admin/capacity, behind the admin token and the
 * body limit of the other admin routes.
 *
 * Also how the Worker tells the governor that an operator changed a tenant's
 * weight, so shares follow at once instead of within the governor's cache
 * lifetime.
 */
import { Hono } from "hono";
import { message, withDeadline } from "../deadline";
import type { CapacityView } from "../governor/object";
import { log } from "../log";
import type { AuthVariables } from "./auth";
import { governorCall } from "./calls";
import { CapacityBody } from "./schemas";
import { parse, readJson } from "./validate";

/** How long a quota change waits for the governor to take note of a new weight. */
export const FORGET_WEIGHT_TIMEOUT_MS = 5_000;
/** How long /metrics and the dashboard wait for the governor's view of the account. */
export const ACCOUNT_VIEW_TIMEOUT_MS = 2_000;

export const capacity = new Hono<{ Bindings: Env; Variables: AuthVariables }>();

capacity.get("/", async (c) => c.json(await governorCall(c.env, "describe", "repeatable", (governor) => governor.describe())));

// Overrides of the Worker vars' limits (null: back to the var); the answer is the capacity as GET shows it.
capacity.put("/", async (c) => {
  const { limits } = parse(CapacityBody, await readJson(c), "body");
  return c.json(await governorCall(c.env, "setLimits", "once", (governor) => governor.setLimits(limits)));
});

/**
 * The tenant's weight changed: the governor reads it again before its next
 * decision involving the tenant. Best effort and never throws: the quota is
 * saved already, and a governor that missed this reads the new weight when
 * its cached one expires (a minute, src/governor/weights.ts).
 */
export async function forgetWeight(env: Env, tenant: string): Promise<void> {
  try {
    await withDeadline(
      governorCall(env, "forgetWeight", "repeatable", (governor) => governor.forgetWeight(tenant)),
      FORGET_WEIGHT_TIMEOUT_MS,
      "the capacity governor (forgetWeight)",
    );
  } catch (error) {
    log("governor_forget_weight_failed", { tenant, error: message(error) });
  }
}

/**
 * The account's capacity as the governor describes it, for views that show
 * more than the account (/metrics, the dashboard): null when the governor does
 * not answer within ACCOUNT_VIEW_TIMEOUT_MS, so a governor that is down or
 * overloaded costs those views the account's numbers, never the pools'.
 */
export async function accountView(env: Env): Promise<CapacityView | null> {
  try {
    return await withDeadline(
      governorCall(env, "describe", "repeatable", (governor) => governor.describe()),
      ACCOUNT_VIEW_TIMEOUT_MS,
      "the capacity governor (describe)",
    );
  } catch (error) {
    log("governor_describe_failed", { error: message(error) });
    return null;
  }
}
