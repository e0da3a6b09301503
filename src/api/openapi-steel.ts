/** Steel's Sessions API in the OpenAPI document (docs/api.md, "Steel's Sessions API"). */
import { content, idParam, problems } from "./openapi-kit";

export function steelPaths(): Record<string, object> {
  return {
    "/v1/sessions": {
      get: {
        summary: "Steel's list of sessions (the namespace's, newest first; cursorId pages, status filters)",
        parameters: [
          { name: "namespace", in: "query", required: false, schema: { type: "string" } },
          { name: "cursorId", in: "query", required: false, schema: { type: "string", format: "uuid" } },
          { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 100, default: 50 } },
          { name: "status", in: "query", required: false, schema: { type: "string", enum: ["live", "released", "failed"] } },
        ],
        responses: { "200": { description: "{sessions}", content: content({ type: "object" }) }, ...problems(400, 401, 503) },
      },
      post: {
        summary: "Steel's create session, on a lease of the namespace's pool (docs/api.md, Steel's Sessions API); fields the broker cannot honour answer 400 naming the field",
        description: "Accepts the steel-api-key header as well as Authorization: Bearer. Body: sessionId (UUID), timeout (ms), namespace, headless (true only).",
        requestBody: { content: content({ type: "object" }) },
        responses: { "200": { description: "Steel's Session: id, status, websocketUrl, sessionViewerUrl, debugUrl, timeout, duration, …", content: content({ type: "object" }) }, ...problems(400, 401, 409, 413, 415, 429, 502, 503) },
      },
    },
    "/v1/sessions/{id}": {
      parameters: [idParam, { name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      get: { summary: "Steel's session: live, released or failed", responses: { "200": { description: "Session", content: content({ type: "object" }) }, ...problems(400, 401, 404, 503) } },
    },
    "/v1/sessions/{id}/release": {
      parameters: [idParam, { name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      post: { summary: "Releases the session", responses: { "200": { description: "{success, message}", content: content({ type: "object" }) }, ...problems(400, 401, 404, 503) } },
    },
    "/v1/sessions/release": {
      parameters: [{ name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      post: { summary: "Releases every session of the caller's key in the namespace", responses: { "200": { description: "{success, message}", content: content({ type: "object" }) }, ...problems(400, 401, 503) } },
    },
  };
}
