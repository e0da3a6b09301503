/**
 * The runbooks (docs/runbooks) name only metrics the broker exports and API
 * paths the broker serves: every `broker_*` name is a family in a live
 * /metrics scrape, and every `$B/...` path matches a route of /openapi.json.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokerUrl } from "./support";

const DIR = join(import.meta.dirname, "..", "..", "docs", "runbooks");
const pages = readdirSync(DIR).filter((f) => f.endsWith(".md"));
const text = pages.map((f) => readFileSync(join(DIR, f), "utf8")).join("\n");

describe("runbooks", () => {
  it("name metrics that /metrics exports", async () => {
    const scrape = await (await fetch(`${brokerUrl()}/metrics`, { headers: { authorization: "Bearer dev-admin" } })).text();
    const families = new Set([...scrape.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]!));
    // (not the dashboard cookie, `broker_admin=…`)
    const named = new Set([...text.matchAll(/\bbroker_[a-z_]+\b(?!=)/g)].map((m) => m[0]));
    expect(named.size).toBeGreaterThan(5);
    for (const name of named) expect(families, `${name} is named in a runbook`).toContain(name);
  });

  it("name API paths the broker serves", async () => {
    const doc = (await (await fetch(`${brokerUrl()}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    const routes = Object.keys(doc.paths).map((p) => new RegExp(`^${p.replace(/\{[^}]+\}/g, "[^/]+")}$`));
    const used = new Set([...text.matchAll(/\$B(\/[\w\-/<>{}.]*)/g)].map((m) => m[1]!.replace(/<[^>]+>/g, "x").replace(/\/$/, "")));
    expect(used.size).toBeGreaterThan(5);
    for (const path of used) expect(routes.some((r) => r.test(path)), `${path} is used in a runbook`).toBe(true);
  });
});
