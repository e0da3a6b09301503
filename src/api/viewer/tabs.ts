/**
 * The leased browser's tabs as the viewer's engine sees them: the page
 * targets that are the lessee's (not the browser's own UI), each with the
 * order in which the engine first saw it, since the newest tab is the one a
 * browser opens in front. Which tab to watch is the engine's decision; this
 * only keeps the list and says how it changed.
 */

export interface Tab {
  targetId: string;
  url: string;
  title: string;
  /** Creation order as this engine saw it: the largest is the newest tab. */
  seen: number;
}

/** A target as Target.targetCreated and Target.targetInfoChanged describe it. */
export interface TargetInfo {
  targetId: string;
  type: string;
  url: string;
  title: string;
}

/** A tab as the page's `{type:"tabs"}` message lists it. */
export interface TabEntry {
  targetId: string;
  url: string;
  title: string;
  active: boolean;
  visible?: boolean;
}

/** A tab of the lessee's: a page, and not a piece of the browser's own UI (`chrome://*.top-chrome/`). */
export function isTab(info: TargetInfo): boolean {
  if (info.type !== "page") return false;
  try {
    return !new URL(info.url).hostname.endsWith(".top-chrome");
  } catch {
    return true; // "" or another unparsable URL: a page still loading
  }
}

export class TabList {
  private readonly tabs = new Map<string, Tab>();
  private seen = 0;

  has(targetId: string): boolean {
    return this.tabs.has(targetId);
  }

  /** Records a tab's URL and title: "new" for a tab not listed before, "changed", or "same" when there is nothing to tell. */
  record(info: TargetInfo): "new" | "changed" | "same" {
    const known = this.tabs.get(info.targetId);
    if (known && known.url === info.url && known.title === info.title) return "same";
    this.tabs.set(info.targetId, { targetId: info.targetId, url: info.url, title: info.title, seen: known?.seen ?? ++this.seen });
    return known ? "changed" : "new";
  }

  /** Forgets a tab; false if it was not listed. */
  remove(targetId: string): boolean {
    return this.tabs.delete(targetId);
  }

  newest(): Tab | undefined {
    let newest: Tab | undefined;
    for (const tab of this.tabs.values()) if (!newest || tab.seen > newest.seen) newest = tab;
    return newest;
  }

  newestFirst(): Tab[] {
    return [...this.tabs.values()].sort((a, b) => b.seen - a.seen);
  }

  /**
   * The list the page shows, oldest first: `active` marks the tab shown (or
   * about to be), and `painted` says, for the tab being screencast once its
   * screencast told, whether the browser paints it.
   */
  entries(active: string | undefined, painted: { targetId: string; visible: boolean } | undefined): TabEntry[] {
    return [...this.tabs.values()]
      .sort((a, b) => a.seen - b.seen)
      .map(({ targetId, url, title }) => ({
        targetId,
        url,
        title,
        active: targetId === active,
        ...(targetId === active && painted?.targetId === targetId ? { visible: painted.visible } : {}),
      }));
  }
}
