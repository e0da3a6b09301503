/**
 * The contract as published: /openapi.json validates as OpenAPI 3.1 with an
 * independent validator (@seriousme/openapi-schema-validator), and /docs
 * renders every route it describes.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { brokerUrl } from "./support";

describe("the published contract", () => {
  it("/openapi.json is a valid OpenAPI 3.1 document", async () => {
    const doc = await (await fetch(`${brokerUrl()}/openapi.json`)).json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("/docs renders every route of /openapi.json, with no API key", async () => {
    const doc = (await (await fetch(`${brokerUrl()}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const page = await fetch(`${brokerUrl()}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ["get", "post", "put", "delete", "patch"].includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.length).toBeGreaterThan(20);
    const shown = [...html.matchAll(/data-route="([^"]+)"/g)].map((m) => m[1]!.replace(/&#39;/g, "'"));
    expect(shown.sort()).toEqual(routes.sort());
  });
});
