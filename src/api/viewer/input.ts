/**
 * What a viewer page may send, read defensively: the page runs in a person's
 * browser, so every message is untrusted. `pageMessage` turns a WebSocket
 * message into an object or nothing; `mouseCommand` and `keyCommand` turn an
 * interactive viewer's `{type:"mouse"}` and `{type:"key"}` messages into the
 * params of Input.dispatchMouseEvent and Input.dispatchKeyEvent, or nothing
 * if any field is out of range (a malformed message is dropped, never fixed).
 */

/** Largest message the page may send that is read at all (input and acks are tiny). */
const MAX_PAGE_MESSAGE_CHARS = 4_096;
const MOUSE_EVENTS = new Set(["mousePressed", "mouseReleased", "mouseMoved", "mouseWheel"]);
const MOUSE_BUTTONS = new Set(["none", "left", "middle", "right", "back", "forward"]);
const KEY_EVENTS = new Set(["keyDown", "keyUp", "char"]);
/** Coordinates beyond any screen are refused rather than clamped: they are a bug or a probe. */
const MAX_COORDINATE = 100_000;

/** A page's message as an object: undefined for binary, oversized, unparsable or non-object messages. */
export function pageMessage(data: string | ArrayBuffer): Record<string, unknown> | undefined {
  if (typeof data !== "string" || data.length > MAX_PAGE_MESSAGE_CHARS) return undefined;
  let message: unknown;
  try {
    message = JSON.parse(data);
  } catch {
    return undefined;
  }
  return isRecord(message) ? message : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function finite(value: unknown, fallback: number, limit = MAX_COORDINATE): number | undefined {
  if (value === undefined) return fallback;
  return typeof value === "number" && Number.isFinite(value) && Math.abs(value) <= limit ? value : undefined;
}

function smallInt(value: unknown, max: number): number | undefined {
  if (value === undefined) return 0;
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= max ? (value as number) : undefined;
}

function shortText(value: unknown): string | undefined {
  if (value === undefined) return "";
  return typeof value === "string" && value.length <= 32 ? value : undefined;
}

/** Input.dispatchMouseEvent's params for a page's `{type:"mouse"}` message, or undefined if it is malformed. */
export function mouseCommand(m: Record<string, unknown>): Record<string, unknown> | undefined {
  if (typeof m.event !== "string" || !MOUSE_EVENTS.has(m.event)) return undefined;
  const x = finite(m.x, NaN);
  const y = finite(m.y, NaN);
  const button = m.button === undefined ? (m.event === "mousePressed" || m.event === "mouseReleased" ? "left" : "none") : m.button;
  const clickCount = m.clickCount === undefined ? (m.event === "mousePressed" || m.event === "mouseReleased" ? 1 : 0) : smallInt(m.clickCount, 3);
  const deltaX = finite(m.deltaX, 0);
  const deltaY = finite(m.deltaY, 0);
  const modifiers = smallInt(m.modifiers, 15);
  const buttons = smallInt(m.buttons, 31);
  if (x === undefined || y === undefined || Number.isNaN(x) || Number.isNaN(y)) return undefined;
  if (typeof button !== "string" || !MOUSE_BUTTONS.has(button)) return undefined;
  if (clickCount === undefined || deltaX === undefined || deltaY === undefined || modifiers === undefined || buttons === undefined) return undefined;
  return {
    type: m.event,
    x,
    y,
    button,
    buttons,
    clickCount,
    modifiers,
    ...(m.event === "mouseWheel" ? { deltaX, deltaY } : {}),
  };
}

/** Input.dispatchKeyEvent's params for a page's `{type:"key"}` message, or undefined if it is malformed. */
export function keyCommand(m: Record<string, unknown>): Record<string, unknown> | undefined {
  if (typeof m.event !== "string" || !KEY_EVENTS.has(m.event)) return undefined;
  const key = shortText(m.key);
  const code = shortText(m.code);
  const text = shortText(m.text);
  const keyCode = smallInt(m.keyCode, 255);
  const modifiers = smallInt(m.modifiers, 15);
  if (key === undefined || code === undefined || text === undefined || keyCode === undefined || modifiers === undefined) return undefined;
  if (m.event === "char" && !text) return undefined;
  // As Puppeteer does: a keyDown that types nothing is a rawKeyDown, or Chromium would insert its (empty) text.
  const type = m.event === "keyDown" && !text ? "rawKeyDown" : m.event;
  return {
    type,
    key,
    code,
    modifiers,
    windowsVirtualKeyCode: keyCode,
    nativeVirtualKeyCode: keyCode,
    ...(text ? { text, unmodifiedText: text } : {}),
  };
}
