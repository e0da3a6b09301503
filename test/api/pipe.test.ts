/**
 * The CDP proxy's pipe on real workerd WebSockets (two WebSocketPairs standing
 * for the client's and the browser's sockets), with a pool-object control that
 * the test drives: text and binary both ways, close codes passed on, and the
 * lease's end closing both sides with 4001 and being reported exactly once.
 */
import { describe, expect, it } from "vitest";
import { LEASE_ENDED_CLOSE_CODE, pipe } from "../../src/api/cdp";

function control(failFirstWatches = 0) {
  let end: (value: { reason: string }) => void = () => {};
  let watches = 0;
  const closed: string[] = [];
  const ended = new Promise<{ reason: string }>((resolve) => (end = resolve));
  let reported: () => void = () => {};
  const report = new Promise<void>((resolve) => (reported = resolve));
  return {
    closed,
    endLease: (reason: string) => end({ reason }),
    reported: report,
    get watches() {
      return watches;
    },
    stub: () => ({
      watchConnection: () => {
        watches += 1;
        return watches <= failFirstWatches ? Promise.reject(new Error("Durable Object reset because its code was updated")) : ended;
      },
      closeConnection: async (id: string) => {
        closed.push(id);
        reported();
      },
    }),
  };
}

/** A client end and a browser end, piped; returns the far ends the test plays. */
function piped(ctl: ReturnType<typeof control>) {
  const [clientFar, clientNear] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  const [browserFar, browserNear] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  clientNear.accept();
  browserNear.accept();
  clientFar.accept();
  browserFar.accept();
  clientFar.binaryType = "arraybuffer";
  browserFar.binaryType = "arraybuffer";
  pipe(clientNear, browserNear, { stub: ctl.stub, connectionId: "c1", onEnd: () => {} });
  return { client: clientFar, browser: browserFar };
}

const nextMessage = (socket: WebSocket) =>
  new Promise<string | ArrayBuffer>((resolve) => socket.addEventListener("message", (e) => resolve(e.data), { once: true }));
const nextClose = (socket: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    socket.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }), { once: true }),
  );

describe("the CDP pipe", () => {
  it("carries text and binary frames both ways, unchanged", async () => {
    const ctl = control();
    const { client, browser } = piped(ctl);
    const atBrowser = nextMessage(browser);
    client.send('{"id":1,"method":"Browser.getVersion"}');
    expect(await atBrowser).toBe('{"id":1,"method":"Browser.getVersion"}');
    const atClient = nextMessage(client);
    browser.send(new Uint8Array([0, 1, 2, 255]));
    const binary = await atClient;
    expect(binary).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(binary as ArrayBuffer)]).toEqual([0, 1, 2, 255]);
    const back = nextMessage(browser);
    client.send(new Uint8Array([9, 8, 7]));
    expect([...new Uint8Array((await back) as ArrayBuffer)]).toEqual([9, 8, 7]);
  });

  it("passes the client's close code on to the browser and reports the connection closed once", async () => {
    const ctl = control();
    const { client, browser } = piped(ctl);
    const closed = nextClose(browser);
    client.close(3001, "client done");
    expect(await closed).toEqual({ code: 3001, reason: "client done" });
    await ctl.reported;
    expect(ctl.closed).toEqual(["c1"]);
  });

  it("passes the browser's close code on to the client", async () => {
    const ctl = control();
    const { client, browser } = piped(ctl);
    const closed = nextClose(client);
    browser.close(1001, "browser going away");
    expect(await closed).toEqual({ code: 1001, reason: "browser going away" });
  });

  it("closes both sides with 4001 when the lease ends", async () => {
    const ctl = control();
    const { client, browser } = piped(ctl);
    const [c, b] = [nextClose(client), nextClose(browser)];
    ctl.endLease("expired");
    expect(await c).toEqual({ code: LEASE_ENDED_CLOSE_CODE, reason: "lease expired" });
    expect(await b).toEqual({ code: LEASE_ENDED_CLOSE_CODE, reason: "lease expired" });
    await ctl.reported;
    expect(ctl.closed).toEqual(["c1"]);
  });

  it("asks again when its watch call fails (pool object restarted) and still closes at the lease's end", async () => {
    const ctl = control(2);
    const { client, browser } = piped(ctl);
    // Traffic keeps flowing while the pipe re-establishes its watch.
    const atBrowser = nextMessage(browser);
    client.send("still here");
    expect(await atBrowser).toBe("still here");
    const closed = nextClose(client);
    ctl.endLease("released");
    expect(await closed).toEqual({ code: LEASE_ENDED_CLOSE_CODE, reason: "lease released" });
    expect(ctl.watches).toBe(3);
  });
});
