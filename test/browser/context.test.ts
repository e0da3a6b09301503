/**
 * A browser's state (src/browser/context.ts) with real Chromium through the
 * BROWSER binding: a state applied is what the first page a client opens
 * sees; a read gives back what the lease's pages left; and a reset forgets
 * cookies and storage, so a reused browser never carries one lease's state
 * into the next. Pages are served by the client itself (request
 * interception), since the browser has no network here.
 */
import puppeteer, { type Browser, type Page } from "@cloudflare/puppeteer";
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { realBrowsers } from "../support/browsers";
import type { StoredState } from "../../src/browser/state";

const { provider, launch } = realBrowsers();

/** A page of the default context whose every request the client answers with an empty document, opened at `url`. */
async function visit(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage();
  await page.setRequestInterception(true);
  page.on("request", (request) => void request.respond({ status: 200, contentType: "text/html", body: "<!doctype html><title>served</title>" }));
  await page.goto(url);
  return page;
}

const seen = (page: Page) =>
  page.evaluate("({ cookie: document.cookie, items: Object.fromEntries(Object.entries(localStorage)) })") as Promise<{ cookie: string; items: Record<string, string> }>;

const STATE: StoredState = {
  cookies: [
    { name: "session", value: "s3cr3t-cookie", domain: "shop.example", path: "/", secure: true, httpOnly: false, sameSite: "Lax" },
    { name: "theme", value: "dark", url: "https://shop.example/" },
  ],
  localStorage: { "https://shop.example": { cart: "3 items", user: "ada" }, "https://docs.example": { lang: "en" } },
};

describe("browser state over CDP, real Chromium", () => {
  it("applies cookies and localStorage so the first page a client opens sees them, and reads them back", async () => {
    const sessionId = await launch();
    await provider.applyState(sessionId, STATE);

    const client = await puppeteer.connect(env.BROWSER, sessionId);
    try {
      const shop = await visit(client, "https://shop.example/cart");
      const { cookie, items } = await seen(shop);
      expect(cookie.split("; ").sort()).toEqual(["session=s3cr3t-cookie", "theme=dark"]);
      expect(items).toEqual({ cart: "3 items", user: "ada" });
      const docs = await visit(client, "https://docs.example/");
      expect((await seen(docs)).items).toEqual({ lang: "en" });

      // The client changes things; a read gives back what the browser holds now.
      await shop.evaluate(`localStorage.setItem("cart", "4 items")`);
      const read = await provider.readState(sessionId);
      expect(read.localStorage).toEqual({ "https://shop.example": { cart: "4 items", user: "ada" }, "https://docs.example": { lang: "en" } });
      expect(read.cookies.map((c) => [c.name, c.value, c.domain]).sort()).toEqual([
        ["session", "s3cr3t-cookie", "shop.example"],
        ["theme", "dark", "shop.example"],
      ]);
      // The read's scratch tab is gone again.
      expect((await client.pages()).map((p) => p.url()).sort()).toEqual(["about:blank", "https://docs.example/", "https://shop.example/cart"]);
    } finally {
      client.disconnect();
    }
  });

  it("a read state applied to another browser recreates it (the round trip a profile makes)", async () => {
    const first = await launch();
    await provider.applyState(first, STATE);
    const client = await puppeteer.connect(env.BROWSER, first);
    await visit(client, "https://shop.example/");
    await visit(client, "https://docs.example/");
    client.disconnect();
    const carried = await provider.readState(first);

    const second = await launch();
    await provider.applyState(second, carried);
    // Before any tab shows an origin, a read finds localStorage through the cookies' domains:
    // shop.example's (it set cookies), not docs.example's (it set none).
    const before = await provider.readState(second);
    expect(before.cookies.map((c) => c.name).sort()).toEqual(["session", "theme"]);
    expect(before.localStorage).toEqual({ "https://shop.example": { cart: "3 items", user: "ada" } });
    const next = await puppeteer.connect(env.BROWSER, second);
    try {
      const page = await visit(next, "https://shop.example/");
      expect(await seen(page)).toEqual({ cookie: expect.stringContaining("session=s3cr3t-cookie"), items: { cart: "3 items", user: "ada" } });
    } finally {
      next.disconnect();
    }
  });

  it("a reset forgets the previous lease's cookies and storage, of every origin its tabs show (history and frames included)", async () => {
    const sessionId = await launch();
    const client = await puppeteer.connect(env.BROWSER, sessionId);
    const page = await visit(client, "https://first.example/");
    await page.evaluate(`document.cookie = "left=behind; path=/"; localStorage.setItem("secret", "of lease one")`);
    // Then on to another origin in the same tab: only its history names first.example now.
    await page.goto("https://second.example/");
    await page.evaluate(`localStorage.setItem("also", "secret")`);
    client.disconnect();

    await provider.reset(sessionId);

    const next = await puppeteer.connect(env.BROWSER, sessionId);
    try {
      for (const url of ["https://first.example/", "https://second.example/"]) {
        const fresh = await visit(next, url);
        expect(await seen(fresh), url).toEqual({ cookie: "", items: {} });
      }
    } finally {
      next.disconnect();
    }
  });
});
