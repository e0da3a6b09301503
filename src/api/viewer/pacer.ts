/**
 * Paces a viewer's frames by the viewer. Chromium keeps sending screencast
 * frames only while few are unacknowledged (two in flight), so holding the ack
 * is how the rate is lowered: the page itself runs at full speed whatever the
 * viewer does.
 *
 * A frame is sent to the viewer, and Chromium's frames so far acknowledged,
 * only when the viewer has acknowledged the frame before AND 1000/maxFps ms
 * have passed since the last send. Frames arriving meanwhile replace each
 * other: only the newest is kept, never a queue, so a viewer that catches up
 * gets the latest picture at once, and a page that stops changing is still
 * shown as it finally is (Chromium sends no frame without a repaint).
 */

export interface Frame {
  data: string;
  metadata: Record<string, unknown>;
  /** The screencast's frame number, echoed in Page.screencastFrameAck. */
  ack: number;
}

export class FramePacer {
  private newest: Frame | undefined;
  private unacked: number[] = [];
  private viewerDrawing = false;
  private lastSentAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;
  dropped = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly send: (frame: Frame) => boolean,
    private readonly ackBrowser: (frameNumbers: number[]) => void,
  ) {}

  frame(frame: Frame): void {
    if (this.newest) this.dropped += 1;
    this.newest = frame;
    this.unacked.push(frame.ack);
    this.tick();
  }

  viewerAck(): void {
    this.viewerDrawing = false;
    this.tick();
  }

  /** Forgets the watched tab's frames (a switch: they belong to a screencast that is over). */
  reset(): void {
    this.newest = undefined;
    this.unacked = [];
    this.stop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (this.viewerDrawing || this.timer || (!this.newest && this.unacked.length === 0)) return;
    const wait = this.lastSentAt + this.intervalMs - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.tick();
      }, wait);
      return;
    }
    if (this.newest) {
      const frame = this.newest;
      this.newest = undefined;
      if (!this.send(frame)) return;
      this.viewerDrawing = true;
      this.lastSentAt = Date.now();
    }
    this.ackBrowser(this.unacked.splice(0));
  }
}
