/** The request body limits every /v1 route runs before anything reads a body (docs/configuration.md, "Limits"). */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { MAX_STATE_BYTES } from "../browser/state";
import { ApiError } from "./errors";
import { MAX_BODY_BYTES } from "./schemas";

/**
 * Bodies over MAX_BODY_BYTES answer 413 before anything reads them; those that
 * may carry a browser state (an acquire's `context`, Steel's `sessionContext`,
 * a profile) may take MAX_STATE_BYTES plus room for the rest of the body.
 */
const STATE_BODY_BYTES = MAX_STATE_BYTES + MAX_BODY_BYTES;
const carriesState = (method: string, path: string) =>
  (method === "POST" && (/^\/v1\/pools\/[^/]+\/leases(\/[^/]+\/next)?\/?$/.test(path) || /^\/v1\/sessions\/?$/.test(path))) ||
  ((method === "POST" || method === "PATCH") && /^\/v1\/profiles(\/[^/]+)?\/?$/.test(path));
const limitSmall = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => {
    throw new ApiError(413, "payload_too_large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`);
  },
});
const limitState = bodyLimit({
  maxSize: STATE_BODY_BYTES,
  onError: () => {
    throw new ApiError(413, "payload_too_large", `bodies carrying a browser state are limited to ${STATE_BODY_BYTES} bytes (the state itself to ${MAX_STATE_BYTES})`);
  },
});
export const limitBody: MiddlewareHandler = (c, next) => (carriesState(c.req.method, new URL(c.req.url).pathname) ? limitState : limitSmall)(c, next);

