/** Steel's Profiles API (`/v1/profiles`): issue 18, being written. */
import { Hono } from "hono";
import type { AuthVariables } from "./auth";

export const profiles = new Hono<{ Bindings: Env; Variables: AuthVariables }>();
