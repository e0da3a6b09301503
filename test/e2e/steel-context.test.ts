/**
 * Steel's sessionContext and profiles, with the official steel-sdk against the
 * running broker and Puppeteer through each session's websocketUrl: state set
 * at create is what the first page sees; a session's context read back
 * carries into a new session; a profile persisted by one session is there in
 * the next. Pages are served by the client (request interception): the
 * browser needs no network.
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import Steel from "steel-sdk";
import { describe, expect, it } from "vitest";
import { brokerUrl } from "./support";

const client = () => new Steel({ baseURL: brokerUrl(), steelAPIKey: "dev-key", maxRetries: 0 });

/** A page at `url` whose every request the client answers with an empty document. */
async function visit(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage();
  await page.setRequestInterception(true);
  page.on("request", (request) => void request.respond({ status: 200, contentType: "text/html", body: "<!doctype html><title>app</title>" }));
  await page.goto(url);
  return page;
}

type Seen = { cookie: string; items: Record<string, string> };
const seen = (page: Page) => page.evaluate("({ cookie: document.cookie, items: Object.fromEntries(Object.entries(localStorage)) })") as Promise<Seen>;

/** Drives the session's browser through its websocketUrl, then disconnects. */
async function drive<T>(websocketUrl: string, work: (browser: Browser) => Promise<T>): Promise<T> {
  const browser = await puppeteer.connect({ browserWSEndpoint: websocketUrl });
  try {
    return await work(browser);
  } finally {
    await browser.disconnect();
  }
}

/** Asks until `done` holds, within `ms` (the profile is written by the broker after the release answered). */
async function until<T>(ask: () => Promise<T>, done: (value: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    const value = await ask();
    if (done(value)) return value;
    if (Date.now() + delay > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

describe("steel-sdk: sessionContext and profiles", () => {
  it("sessionContext set at create is what the first page sees", async () => {
    const steel = client();
    const session = await steel.sessions.create({
      sessionContext: {
        cookies: [{ name: "token", value: "abc123", domain: "shop.example", path: "/", secure: true }],
        localStorage: { "https://shop.example": { cart: "2 items" } },
      },
    });
    try {
      const got = await drive(session.websocketUrl, async (browser) => seen(await visit(browser, "https://shop.example/")));
      expect(got).toEqual({ cookie: "token=abc123", items: { cart: "2 items" } });
    } finally {
      await steel.sessions.release(session.id);
    }
  });

  it("a session's context, read back with sessions.context, carries into a new session", async () => {
    const steel = client();
    const first = await steel.sessions.create({});
    await drive(first.websocketUrl, async (browser) => {
      const page = await visit(browser, "https://app.example/login");
      await page.evaluate(`document.cookie = "sid=logged-in; path=/; max-age=3600"; localStorage.setItem("user", "ada")`);
    });
    const context = await steel.sessions.context(first.id);
    expect(context.cookies?.map((c) => `${c.name}=${c.value}`)).toContain("sid=logged-in");
    expect(context.localStorage).toMatchObject({ "https://app.example": { user: "ada" } });
    await steel.sessions.release(first.id);

    const second = await steel.sessions.create({ sessionContext: context });
    try {
      const got = await drive(second.websocketUrl, async (browser) => seen(await visit(browser, "https://app.example/")));
      expect(got).toEqual({ cookie: "sid=logged-in", items: { user: "ada" } });
    } finally {
      await steel.sessions.release(second.id);
    }
  });

  it("persistProfile saves the browser's state when the session ends; a session with that profileId starts with it", async () => {
    const steel = client();
    const first = await steel.sessions.create({ persistProfile: true });
    const profileId = (first as { profileId?: string }).profileId;
    expect(profileId).toMatch(/^[0-9a-f-]{36}$/);
    await drive(first.websocketUrl, async (browser) => {
      const page = await visit(browser, "https://mail.example/");
      await page.evaluate(`document.cookie = "auth=remember-me; path=/; max-age=86400"; localStorage.setItem("folder", "inbox")`);
    });
    await steel.sessions.release(first.id);
    const profile = await until(() => steel.profiles.get(profileId!), (p) => p.status === "READY", 20_000, "the profile saved");
    expect(profile).toMatchObject({ id: profileId, sourceSessionId: first.id });
    expect((await steel.profiles.list()).profiles.map((p) => p.id)).toContain(profileId);

    const second = await steel.sessions.create({ profileId: profileId! });
    try {
      const got = await drive(second.websocketUrl, async (browser) => seen(await visit(browser, "https://mail.example/")));
      expect(got).toEqual({ cookie: "auth=remember-me", items: { folder: "inbox" } });
    } finally {
      await steel.sessions.release(second.id);
    }
  });

  it("answers what it cannot do as the SDK's error classes", async () => {
    const steel = client();
    await expect(steel.sessions.create({ profileId: crypto.randomUUID() })).rejects.toBeInstanceOf(Steel.NotFoundError);
    await expect(steel.profiles.create({ userDataDir: new File([new Uint8Array([1, 2, 3])], "profile.zip") })).rejects.toBeInstanceOf(Steel.BadRequestError);
    await expect(steel.sessions.create({ dimensions: { width: 1280, height: 720 } })).rejects.toBeInstanceOf(Steel.BadRequestError);
    await expect(steel.profiles.update(crypto.randomUUID(), { userDataDir: new File([new Uint8Array([1])], "profile.zip") })).rejects.toBeInstanceOf(Steel.BadRequestError);
  });
});
