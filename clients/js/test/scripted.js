// A gateway scripted by the test, for what needs no binary: a WebSocket
// class whose sockets the test drives frame by frame.
import assert from "node:assert/strict";

/**
 * scripted returns {WebSocket, sent, urls, sockets, push, drop, ops}: each
 * socket the client opens is welcomed as user, unless accept(n) (n: 1 for
 * the first socket) returns a close code, with which it is closed before
 * any welcome (as a refused upgrade shows in a browser: 1006). sent holds
 * every op the client sent, on any socket; push(frame) delivers a frame on
 * the newest socket, drop(code, reason) closes it as the gateway would.
 */
export function scripted(user, { accept = () => true } = {}) {
  const s = { sent: [], urls: [], sockets: [], socket: null };
  s.WebSocket = class {
    readyState = 1;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;
    constructor(url) {
      s.urls.push(String(url));
      s.sockets.push(this);
      s.socket = this;
      const verdict = accept(s.sockets.length);
      setTimeout(() => {
        if (this.readyState !== 1) return;
        if (verdict === true) s.push({ type: "welcome", conn: `t-${s.sockets.length}`, user, ping_interval: 25 }, this);
        else s.drop(verdict, "", this);
      });
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("not open");
      s.sent.push(JSON.parse(data));
    }
    close() {
      this.readyState = 3;
    }
  };
  s.push = (frame, ws = s.socket) => ws.onmessage?.({ data: JSON.stringify(frame) });
  s.drop = (code, reason = "", ws = s.socket) => {
    ws.readyState = 3;
    ws.onclose?.({ code, reason });
  };
  s.ops = (op) => s.sent.filter((o) => o.op === op);
  return s;
}

export const tick = (ms = 0) => new Promise((res) => setTimeout(res, ms));

/** until polls fn every 4 ms for up to a second. */
export async function until(fn, what) {
  for (let i = 0; i < 250 && !fn(); i++) await tick(4);
  assert.ok(fn(), what);
}
