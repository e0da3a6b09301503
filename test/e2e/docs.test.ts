/**
 * The documentation holds together: every relative link of README.md and
 * docs/ (files and #anchors, GitHub's heading slugs) resolves to a file or
 * heading inside the repository; nothing refers outside it; the README stays
 * short and names the two commands; docs/api.md names every code of the error
 * catalogue. And a problem's `type`, fetched from the running broker, is a
 * page that has the code's entry.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readmeBlocks, replaceBlock } from "../../bench/readme.mjs";
import { ERROR_CODES } from "../../src/problems";
import { brokerUrl } from "./support";

const ROOT = resolve(import.meta.dirname, "..", "..");

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith(".md") ? [path] : [];
  });
}

const FILES = [join(ROOT, "README.md"), ...markdownFiles(join(ROOT, "docs"))];

/** The text without fenced code blocks and inline code spans, where a `[x](y)` is not a link. */
function prose(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** GitHub's anchors for a Markdown file's headings (duplicates get -1, -2, …). */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  const text = readFileSync(file, "utf8").replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const match of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = match[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

/** Every link of `file` whose target is not absolute (http:, mailto:, …). */
function relativeLinks(file: string): string[] {
  const text = prose(readFileSync(file, "utf8"));
  const targets = [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  return targets.filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe("README.md and docs/", () => {
  it.each(FILES.map((file) => relative(ROOT, file)))("%s: every relative link resolves inside the repository", (name) => {
    const file = join(ROOT, name);
    const broken: string[] = [];
    for (const link of relativeLinks(file)) {
      const [path, anchor] = link.split("#", 2) as [string, string | undefined];
      const target = path === "" ? file : resolve(dirname(file), decodeURIComponent(path));
      if (relative(ROOT, target).startsWith("..")) {
        broken.push(`${link}: outside the repository`);
        continue;
      }
      if (!existsSync(target)) {
        broken.push(`${link}: no such file`);
        continue;
      }
      if (anchor !== undefined) {
        if (!target.endsWith(".md")) broken.push(`${link}: an anchor into a file that is not Markdown`);
        else if (!anchors(target).has(anchor)) broken.push(`${link}: no heading with that anchor`);
      }
    }
    expect(broken).toEqual([]);
  });

  it.each(FILES.map((file) => relative(ROOT, file)))("%s: refers to nothing outside the repository", (name) => {
    expect(readFileSync(join(ROOT, name), "utf8")).not.toMatch(/\.\.\/shared\b/);
  });

  it("the README is under 15 KB and names the two commands", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(Buffer.byteLength(readme)).toBeLessThan(15_000);
    expect(readme).toContain("npm start");
    expect(readme).toContain("npm test");
  });

  it("the README's Performance section shows the figures bench/lifecycle.json and bench/results.json hold", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const json = (name: string): unknown => JSON.parse(readFileSync(join(ROOT, "bench", name), "utf8"));
    const blocks = readmeBlocks(json("lifecycle.json"), json("results.json"));
    expect(Object.keys(blocks).length).toBeGreaterThan(0);
    for (const [name, body] of Object.entries(blocks)) {
      // The block as the benchmark (or `node bench/readme.mjs`) writes it; fails if edited by hand or not rewritten.
      expect(readme, name).toContain(`<!-- ${name} -->\n${body}\n<!-- /${name} -->`);
      expect(body, name).toMatch(/\d{4}-\d{2}-\d{2}, \d+ × \S/); // a date and a CPU with every figure
    }
  });

  it("a benchmark replaces only its own block, and refuses a README without it", () => {
    const text = "a\n<!-- x -->\nold\n<!-- /x -->\nb <!-- y -->keep<!-- /y -->\n";
    expect(replaceBlock(text, "x", "new\n")).toBe("a\n<!-- x -->\nnew\n<!-- /x -->\nb <!-- y -->keep<!-- /y -->\n");
    expect(() => replaceBlock(text, "z", "new")).toThrow(/<!-- z -->/);
    expect(() => replaceBlock(`${text}<!-- x -->`, "x", "new")).toThrow(/once|<!-- x -->/);
    expect(() => replaceBlock("<!-- /x --><!-- x -->", "x", "new")).toThrow(/<!-- x -->/);
  });

  it("docs/api.md names every code of the error catalogue, and no other", () => {
    const api = readFileSync(join(ROOT, "docs", "api.md"), "utf8");
    const section = api.slice(api.indexOf("## Errors"), api.indexOf("## Typed client"));
    const rows = section.split("\n").filter((line) => line.startsWith("| 4") || line.startsWith("| 5"));
    const listed = new Set(rows.flatMap((row) => [...row.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!)));
    expect([...listed].sort()).toEqual([...ERROR_CODES].sort());
  });
});

describe("a problem's type, from the running broker", () => {
  it("is a page of that broker with the code's entry", async () => {
    const refused = await fetch(`${brokerUrl()}/v1/pools/docs-check/leases`);
    expect(refused.status).toBe(401);
    const { type, code } = (await refused.json()) as { type: string; code: string };
    expect(type).toBe(`${brokerUrl()}/docs/errors#${code}`);
    const page = await fetch(type);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain(`id="${code}"`);
  });
});
