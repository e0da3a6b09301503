/** Steel's Profiles API in the OpenAPI document (docs/api.md, "Profiles"; the routes: profiles.ts). */
import { z } from "zod";
import { content, idParam, json, problems, ref } from "./openapi-kit";
import { ProfileBody } from "./profiles";

/** The profile object (profiles.ts, profileView): Steel's Profile plus the broker's fields; never the state. */
const Profile = z.object({
  id: z.uuid(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime().describe("the last write: a save from a session, or a create or update here"),
  status: z.enum(["UPLOADING", "READY", "FAILED"]).describe("UPLOADING: made for a session, saved when it ends; FAILED: the last save failed (failureReason), the previous state is kept"),
  sourceSessionId: z.string().nullable().describe("the session whose browser the state was last saved from; null when written here"),
  credentialsConfig: z.null(),
  dimensions: z.null(),
  extensionIds: z.null(),
  fingerprint: z.null(),
  useProxyConfig: z.null(),
  userAgent: z.null(),
  bytes: z.number().int().min(0).describe("the state's size as JSON; at most 524288"),
  expiresAt: z.iso.datetime().describe("when it is deleted: updatedAt plus its retention"),
  retentionDays: z.number().int().min(1).nullable().describe("its own retention; null: the tenant's profileRetentionDays"),
  failureReason: z.string().nullable(),
});

const profile = (description: string) => ({ description, content: content(json(Profile)) });
const body = {
  description:
    "JSON. Steel's multipart form (userDataDir, proxyUrl, dimensions, userAgent) is refused with 400 naming the fields: the broker keeps cookies and localStorage, not user-data-dir archives",
  content: content(json(ProfileBody, "input")),
};

export function profilePaths(): Record<string, object> {
  return {
    "/v1/profiles": {
      get: {
        summary: "Steel's list of profiles: the tenant's, newest first (at most 1000)",
        responses: { "200": { description: "{count, profiles}", content: content({ type: "object", properties: { count: { type: "integer" }, profiles: { type: "array", items: json(Profile) } } }) }, ...problems(401, 503) },
      },
      post: {
        summary: "Creates a profile from a state (sessionContext) and an optional retention",
        requestBody: body,
        responses: { "201": profile("Profile"), ...problems(400, 401, 409, 413, 415, 503) },
      },
    },
    "/v1/profiles/{id}": {
      parameters: [idParam],
      get: { summary: "Steel's profile (never its state); 404 if the tenant has none of that id", responses: { "200": profile("Profile"), ...problems(400, 401, 404, 503) } },
      patch: {
        summary: "Replaces the profile's state (sessionContext) and/or its retention; an absent field is kept",
        requestBody: body,
        responses: { "200": profile("Profile"), ...problems(400, 401, 404, 413, 415, 503) },
      },
      delete: { summary: "Deletes the profile (404 if there is none)", responses: { "204": { description: "Deleted" }, ...problems(400, 401, 404, 503) } },
    },
    "/v1/profiles/{id}/context": {
      parameters: [idParam],
      get: {
        summary: "The profile's saved state, decrypted: cookies and localStorage per origin",
        responses: { "200": { description: "{cookies, localStorage}", content: content(ref("BrowserState")) }, ...problems(400, 401, 404, 503) },
      },
    },
  };
}
