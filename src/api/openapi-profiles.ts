/** Steel's Profiles API in the OpenAPI document (issue 18, being written). */

export function profilePaths(): Record<string, object> {
  return {};
}
