/** Steel's per-session events and live details (`/v1/sessions/{id}/events`, `/live-details`): issue 18, being written. */
import { Hono } from "hono";
import type { AuthVariables } from "./auth";

export const steelLive = new Hono<{ Bindings: Env; Variables: AuthVariables }>();
