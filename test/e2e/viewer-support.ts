/**
 * A person watching a lease: an ordinary headless Chromium on the host (not a
 * leased one, so the broker's own browsers are not used up) opens a viewer
 * page, and the test reads what it shows: the state badge (`#state`) and the
 * colour of the pixels drawn in `#screen`.
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";

const CHROME = process.env.CHROME_PATH ?? "/usr/bin/chromium";

export interface OpenedViewer {
  page: Page;
  browser: Browser;
  /** The colour on screen at the centre of `#screen` (a screenshot of it, decoded by the browser itself). */
  centreColour(): Promise<[number, number, number]>;
  /** The text of the state badge: "connecting", "live", "ended" or "disconnected". */
  state(): Promise<string>;
  /** Resolves once the badge shows `state`, or rejects after `ms`. */
  waitForState(state: string, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens `viewerUrl` and waits until the stream is live and a first frame is drawn. */
export async function openViewer(viewerUrl: string, viewport = { width: 1024, height: 768 }): Promise<OpenedViewer> {
  const browser = await puppeteer.launch({ executablePath: CHROME, args: ["--no-sandbox", "--headless=new"], defaultViewport: viewport });
  try {
    const page = await browser.newPage();
    await page.goto(viewerUrl, { waitUntil: "domcontentloaded" });
    const waitForState = async (state: string, ms = 15_000) => {
      await page.waitForFunction((s) => document.querySelector("#state")?.textContent === s, { timeout: ms }, state);
    };
    await waitForState("live");
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>("#screen");
      return Boolean(img && img.complete && img.naturalWidth > 0);
    }, { timeout: 15_000 });
    return {
      page,
      browser,
      waitForState,
      state: () => page.$eval("#state", (el) => el.textContent ?? ""),
      async centreColour() {
        const screen = await page.$("#screen");
        if (!screen) throw new Error("the viewer page has no #screen");
        const png = await screen.screenshot({ encoding: "base64", type: "png" });
        return page.evaluate(async (data) => {
          const img = new Image();
          img.src = `data:image/png;base64,${data}`;
          await img.decode();
          const canvas = document.createElement("canvas");
          canvas.width = img.naturalWidth;
          canvas.height = img.naturalHeight;
          const context = canvas.getContext("2d")!;
          context.drawImage(img, 0, 0);
          const [r, g, b] = context.getImageData(Math.floor(img.naturalWidth / 2), Math.floor(img.naturalHeight / 2), 1, 1).data;
          return [r, g, b] as [number, number, number];
        }, png);
      },
      close: () => browser.close(),
    };
  } catch (error) {
    await browser.close().catch(() => {});
    throw error;
  }
}

/** Whether two colours are the same within `tolerance` per channel (JPEG at quality 60 shifts solid colours by a few units). */
export function near(actual: [number, number, number], expected: [number, number, number], tolerance = 24): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]!) <= tolerance);
}
