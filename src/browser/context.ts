/**
 * A browser's state (cookies, localStorage per origin: state.ts) read, written
 * and cleared over CDP, on the browser's default context: the one a client's
 * `browser.newPage()` (Puppeteer) or `browser.contexts()[0]` (Playwright)
 * uses. Private contexts a client creates are its own, and the reset disposes
 * them whole.
 *
 * Cookies are one browser-level call each way (`Storage.getCookies`,
 * `Storage.setCookies`). localStorage belongs to an origin and can only be
 * touched from a document of that origin, so it goes through a scratch tab
 * whose every request is answered by us with an empty page (`Fetch`): the tab
 * "visits" each origin without any network, reads or writes its items, and is
 * closed. A connected client may see that tab come and go.
 *
 * Which origins a browser holds storage for cannot be listed over CDP. Reads
 * and the reset's clearing take them from what the browser shows: every open
 * tab's history and frames, and (for clearing) every cookie's domain.
 */
import { withDeadline } from "../deadline";
import type { On, Send } from "./cdp";
import type { CookieState, StoredState } from "./state";

/** How long one scratch-tab visit to an origin may take. */
const VISIT_TIMEOUT_MS = 5_000;
/** The most origins a read visits for their localStorage (each is a navigation of the scratch tab, some milliseconds). */
export const MAX_READ_ORIGINS = 64;
/** How long closing the scratch tab waits for it to be gone. */
const SCRATCH_CLOSE_WAIT_MS = 2_000;
const EMPTY_PAGE = btoa("<!doctype html><title></title>");

type Targets = { targetInfos: { targetId: string; type: string; url: string; browserContextId?: string }[] };

/** Sets the state's cookies and localStorage in the browser's default context. */
export async function applyState(send: Send, on: On, state: StoredState): Promise<void> {
  if (state.cookies.length > 0) await send("Storage.setCookies", { cookies: state.cookies.map(cookieParam) });
  const origins = Object.entries(state.localStorage).filter(([, items]) => Object.keys(items).length > 0);
  if (origins.length === 0) return;
  await withScratchTab(send, on, async (visit, evaluate) => {
    for (const [origin, items] of origins) {
      await visit(origin);
      await evaluate(`(() => { const items = ${JSON.stringify(items)}; for (const [k, v] of Object.entries(items)) localStorage.setItem(k, v); return true; })()`);
    }
  });
}

/**
 * The default context's cookies, and the localStorage of every origin its
 * open tabs show (history and frames included) and of the https origin of
 * each cookie's domain (so state applied but not visited yet, or left by a
 * tab since closed, is found when the site set a cookie), at most
 * MAX_READ_ORIGINS origins.
 */
export async function readState(send: Send, on: On): Promise<StoredState> {
  const { cookies } = await send<{ cookies: CookieState[] }>("Storage.getCookies", {});
  const pages = (await send<Targets>("Target.getTargets")).targetInfos.filter((t) => t.type === "page");
  const origins = await tabOrigins(
    send,
    pages.map((p) => p.targetId),
  );
  for (const cookie of cookies) {
    const host = cookie.domain?.replace(/^\./, "");
    if (host && origins.size < MAX_READ_ORIGINS) origins.add(`https://${host}`);
  }
  const localStorage: StoredState["localStorage"] = {};
  if (origins.size > 0) {
    await withScratchTab(send, on, async (visit, evaluate) => {
      for (const origin of [...origins].slice(0, MAX_READ_ORIGINS)) {
        await visit(origin);
        const items = JSON.parse(String(await evaluate("JSON.stringify(Object.fromEntries(Object.entries(localStorage)))"))) as Record<string, string>;
        if (Object.keys(items).length > 0) localStorage[origin] = items;
      }
    });
  }
  return { cookies, localStorage };
}

/**
 * Forgets what a lease left in the default context: every cookie, and every
 * kind of storage of every origin it can be found to have used (the tabs'
 * histories and frames, the cookies' domains). Called by the reset before it
 * closes the tabs, whose histories name the origins. `via` is a flat session
 * attached to a tab of the default context: Chromium clears an origin's
 * storage only from a page's session (the browser's answers "Internal error").
 */
export async function clearState(send: Send, tabs: string[], via: string): Promise<void> {
  const origins = await tabOrigins(send, tabs);
  const { cookies } = await send<{ cookies: CookieState[] }>("Storage.getCookies", {});
  for (const cookie of cookies) {
    const host = cookie.domain?.replace(/^\./, "");
    if (host) for (const scheme of ["https", "http"]) origins.add(`${scheme}://${host}`);
  }
  if (cookies.length > 0) await send("Storage.clearCookies", {});
  for (const origin of origins) await send("Storage.clearDataForOrigin", { origin, storageTypes: "all" }, via);
}

/** The http(s) origins the given tabs have shown: their histories' entries and their frames. */
async function tabOrigins(send: Send, tabs: string[]): Promise<Set<string>> {
  const origins = new Set<string>();
  const add = (url: string | undefined) => {
    if (!url || !/^https?:/.test(url)) return;
    try {
      origins.add(new URL(url).origin);
    } catch {
      // not a URL an origin can come from
    }
  };
  for (const targetId of tabs) {
    let session: string;
    try {
      ({ sessionId: session } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true }));
    } catch {
      continue; // closed meanwhile
    }
    try {
      const history = await send<{ entries: { url: string }[] }>("Page.getNavigationHistory", {}, session);
      for (const entry of history.entries) add(entry.url);
      type Frame = { frame: { url: string }; childFrames?: Frame[] };
      const walk = (node: Frame) => {
        add(node.frame.url);
        for (const child of node.childFrames ?? []) walk(child);
      };
      walk((await send<{ frameTree: Frame }>("Page.getFrameTree", {}, session)).frameTree);
    } finally {
      await send("Target.detachFromTarget", { sessionId: session }).catch(() => undefined);
    }
  }
  return origins;
}

type Visit = (origin: string) => Promise<void>;
type Evaluate = (expression: string) => Promise<unknown>;

/** A tab of the default context that answers every request itself (an empty page), for visiting origins; closed afterwards. */
async function withScratchTab<T>(send: Send, on: On, work: (visit: Visit, evaluate: Evaluate) => Promise<T>): Promise<T> {
  const { targetId } = await send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
  const offs: (() => void)[] = [];
  try {
    const { sessionId: tab } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
    offs.push(
      on("Fetch.requestPaused", (params: { requestId: string }, from) => {
        if (from !== tab) return;
        void send(
          "Fetch.fulfillRequest",
          { requestId: params.requestId, responseCode: 200, responseHeaders: [{ name: "Content-Type", value: "text/html" }], body: EMPTY_PAGE },
          tab,
        ).catch(() => undefined);
      }),
    );
    await send("Fetch.enable", { patterns: [{ urlPattern: "*" }] }, tab);
    await send("Page.enable", {}, tab);
    const visit: Visit = async (origin) => {
      let off: () => void = () => undefined;
      const loaded = new Promise<void>((resolve) => {
        off = on("Page.loadEventFired", (_params, from) => {
          if (from === tab) resolve();
        });
      });
      try {
        const navigated = await send<{ errorText?: string }>("Page.navigate", { url: `${origin}/` }, tab);
        if (navigated.errorText) throw new Error(`the scratch tab could not open ${origin}: ${navigated.errorText}`);
        await withDeadline(loaded, VISIT_TIMEOUT_MS, `opening ${origin} in a scratch tab`);
      } finally {
        off();
      }
    };
    const evaluate: Evaluate = async (expression) => {
      const answer = await send<{ result: { value?: unknown }; exceptionDetails?: { text?: string; exception?: { description?: string } } }>(
        "Runtime.evaluate",
        { expression, returnByValue: true },
        tab,
      );
      if (answer.exceptionDetails) throw new Error(`the page refused: ${answer.exceptionDetails.exception?.description ?? answer.exceptionDetails.text ?? "an exception"}`);
      return answer.result.value;
    };
    return await work(visit, evaluate);
  } finally {
    for (const off of offs) off();
    await send("Target.closeTarget", { targetId }).catch(() => undefined);
    // closeTarget answers before the tab is gone; a client listing pages meanwhile would meet a dying one.
    const started = Date.now();
    for (let delay = 5; Date.now() - started < SCRATCH_CLOSE_WAIT_MS; delay = Math.min(delay * 2, 50)) {
      const targets = await send<Targets>("Target.getTargets").catch(() => undefined);
      if (!targets?.targetInfos.some((t) => t.targetId === targetId)) break;
      await scheduler.wait(delay);
    }
  }
}

/** A kept cookie as CDP's CookieParam: what `Storage.setCookies` accepts (a session cookie gets no expiry). */
function cookieParam(cookie: CookieState): Record<string, unknown> {
  const param: Record<string, unknown> = { name: cookie.name, value: cookie.value };
  for (const key of ["url", "domain", "path", "secure", "httpOnly", "sameSite", "priority", "sameParty", "sourceScheme", "sourcePort", "partitionKey"] as const) {
    if (cookie[key] !== undefined) param[key] = cookie[key];
  }
  if (!cookie.session && typeof cookie.expires === "number" && cookie.expires > 0) param.expires = cookie.expires;
  return param;
}
