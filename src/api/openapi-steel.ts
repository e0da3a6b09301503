/** Steel's Sessions API in the OpenAPI document (docs/api.md, "Steel's Sessions API"). */
import { content, idParam, problems, ref } from "./openapi-kit";

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
        description: "Accepts the steel-api-key header as well as Authorization: Bearer. Body: sessionId (UUID), timeout (ms), namespace, headless (true only), sessionContext (cookies, localStorage: applied before the answer), profileId, persistProfile (the answer then carries profileId), region (lax, ord, iad, scl, fra, nrt: the namespace pool's location hint, fixed when it is created).",
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
    "/v1/sessions/{id}/events": {
      parameters: [idParam, { name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      get: {
        summary: "The session's events, oldest first: its lease's lifecycle journal (requested, granted, connected, released, …), not Steel's rrweb recording",
        description: "Paged with limit and pointer: a page that is not the last carries a Next-Cursor header, sent back as pointer for the next. compressed=true is refused (400).",
        parameters: [
          { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 1000 } },
          { name: "pointer", in: "query", required: false, schema: { type: "string" }, description: "the previous page's Next-Cursor" },
          { name: "compressed", in: "query", required: false, schema: { type: "boolean", enum: [false] } },
        ],
        responses: {
          "200": {
            description: "[{at, event, sessionRow?, detail?}]",
            headers: { "Next-Cursor": { description: "present when more events follow: the pointer of the next page", schema: { type: "string" } } },
            content: content({ type: "array", items: { type: "object", properties: { at: { type: "string", format: "date-time" }, event: { type: "string" }, sessionRow: { type: "integer" }, detail: { type: "object" } }, required: ["at", "event"] } }),
          },
          ...problems(400, 401, 404, 503),
        },
      },
    },
    "/v1/sessions/{id}/context": {
      parameters: [idParam, { name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      get: {
        summary: "The live session's cookies and localStorage, read from its browser now, in sessionContext's shape (sessionStorage and indexedDB always empty)",
        responses: { "200": { description: "{cookies, localStorage, sessionStorage: {}, indexedDB: {}}", content: content(ref("BrowserState")) }, ...problems(400, 401, 404, 409, 502, 503) },
      },
    },
    "/v1/sessions/{id}/live-details": {
      parameters: [idParam, { name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      get: {
        summary: "The live session's pages (read from its browser now) and a fresh view-only viewer URL; wsUrl is empty (the connect URL is shown only at creation)",
        responses: {
          "200": { description: "{pages: [{id, url, title, favicon: null, sessionViewerUrl, sessionViewerFullscreenUrl}], sessionViewerUrl, sessionViewerFullscreenUrl, wsUrl: \"\"}", content: content({ type: "object" }) },
          ...problems(400, 401, 404, 409, 503),
        },
      },
    },
    "/v1/sessions/release": {
      parameters: [{ name: "namespace", in: "query", required: false, schema: { type: "string" } }],
      post: { summary: "Releases every session of the caller's key in the namespace", responses: { "200": { description: "{success, message}", content: content({ type: "object" }) }, ...problems(400, 401, 503) } },
    },
  };
}
