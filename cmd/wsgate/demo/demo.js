// The demo page of `make run`: a WsgateClient for the user in the form,
// its state, welcome and notifications on the page, topics to subscribe,
// the publish commands that reach it, and a form that publishes through
// the HTTP API. config.json (served by the gateway's admin listener) says
// where the gateway, NATS and the API are.
import { WsgateClient } from "./wsgate.min.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const config = await (await fetch("config.json")).json();

let client = null;
const topics = new Map(); // name ("topic.sports") to its <li>

function connect(user) {
  if (client) client.close();
  $("api-channel").value = `user.${user}`;
  const url = `${config.ws}?user=${encodeURIComponent(user)}`;
  $("url").textContent = url;
  client = new WsgateClient({
    url,
    catchUp: true, // what user has not acked yet, published while no page was open
    debug: params.has("debug"),
  });
  const c = client;
  c.on("state", (state, d) => {
    if (c !== client) return;
    $("state").textContent = state;
    $("state").className = "state " + state;
    let detail = "";
    if (state === "disconnected") {
      detail = `close ${d.code ?? ""} ${d.reason ?? ""}`.trim();
      detail += d.willReconnect ? `; reconnecting in ${d.delay} ms (attempt ${d.attempt})` : "; stopped";
    } else if (state === "connecting" && d.attempt > 0) {
      detail = `attempt ${d.attempt + 1}`;
    }
    $("detail").textContent = detail;
    if (state !== "connected") {
      for (const li of topics.values()) li.querySelector(".status").textContent = "waiting for the connection";
    }
  });
  c.on("welcome", (w) => {
    $("welcome").textContent = JSON.stringify({ type: "welcome", conn: w.conn, user: w.user, ping_interval: w.pingInterval });
    $("conn").textContent = w.conn;
    $("ping").textContent = w.pingInterval ? `${w.pingInterval} s` : "off";
    event(`welcome: connection ${w.conn}, user ${w.user}`);
  });
  c.on("message", (m) => c === client && notification(m));
  c.on("resumed", (r) =>
    event(`resumed ${r.channel} from seq ${r.seq}: ${r.recovered ? "nothing missing" : "recovered: false, " + r.reason}${r.count ? `, the first ${r.count}` : ""}`),
  );
  c.on("lost", (l) => event(`${l.channel}: notifications expired before they could be resumed (${l.reason})`));
  c.on("error", (e) => event(`error: ${e.message}`));
  c.connect();
  for (const name of topics.keys()) subscribe(name);
  commands(user);
}

function subscribe(name) {
  let li = topics.get(name);
  if (!li) {
    li = document.createElement("li");
    li.dataset.topic = name;
    li.innerHTML = `<code></code><span class="status muted"></span><button>unsubscribe</button>`;
    li.querySelector("code").textContent = name;
    li.querySelector("button").onclick = () => unsubscribe(name);
    $("topic-list").append(li);
    topics.set(name, li);
  }
  const status = li.querySelector(".status");
  status.textContent = "subscribing…";
  const c = client;
  c.subscribe(name).then(
    () => {
      if (topics.get(name) === li && c === client) status.textContent = "subscribed";
    },
    (e) => {
      if (topics.get(name) !== li || c !== client) return; // unsubscribed, or another user's client, meanwhile
      li.remove();
      topics.delete(name);
      $("topic-error").textContent = `${name}: ${e.code ?? ""} ${e.message}`;
      commands($("user").value);
    },
  );
  commands($("user").value);
}

function unsubscribe(name) {
  topics.get(name)?.remove();
  topics.delete(name);
  client.unsubscribe(name).catch((e) => event(`unsubscribe ${name}: ${e.message}`));
  commands($("user").value);
}

function commands(user) {
  const p = config.publish;
  const list = [
    [`${p} --user ${user} '{"text":"hi"}'`, "volatile, to every socket of the user"],
    [`${p} --durable --user ${user} '{"order":7}'`, "durable: stored first, carries seq, resumed after a reload"],
    [`${p} --broadcast '"maintenance at 22:00"'`, "to everyone connected"],
  ];
  for (const name of topics.keys()) {
    list.push([`${p} --topic ${name.slice("topic.".length)} '{"score":"2-1"}'`, `to the subscribers of ${name}`]);
  }
  $("commands").replaceChildren(
    ...list.map(([cmd, what]) => {
      const li = document.createElement("li");
      li.innerHTML = `<code></code><span class="muted"></span>`;
      li.querySelector("code").textContent = cmd;
      li.querySelector("span").textContent = what;
      return li;
    }),
  );
}

function row(cls) {
  const li = document.createElement("li");
  li.className = cls;
  const time = document.createElement("span");
  time.className = "muted mono";
  time.textContent = new Date().toLocaleTimeString();
  li.append(time);
  $("messages").prepend(li);
  return li;
}

function notification(m) {
  const li = row(m.durable ? "durable" : "volatile");
  li.dataset.channel = m.channel;
  const ch = document.createElement("code");
  ch.textContent = m.channel;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = m.durable ? `durable seq ${m.seq} (prev ${m.prev})` : "volatile";
  const data = document.createElement("code");
  data.className = "data";
  data.textContent = typeof m.data === "string" ? m.data : JSON.stringify(m.data);
  li.append(kind, ch, data);
}

function event(text) {
  const li = row("event");
  const span = document.createElement("span");
  span.textContent = text;
  li.append(span);
}

$("user-form").onsubmit = (e) => {
  e.preventDefault();
  connect($("user").value);
};
$("topic-form").onsubmit = (e) => {
  e.preventDefault();
  $("topic-error").textContent = "";
  subscribe("topic." + $("topic").value.trim());
};
$("clear").onclick = () => $("messages").replaceChildren();

// The HTTP API form: the same origin as this page, so a plain fetch.
$("api-form").onsubmit = async (e) => {
  e.preventDefault();
  const result = $("api-result");
  result.className = "mono muted";
  let data;
  try {
    data = JSON.parse($("api-data").value);
  } catch (err) {
    result.className = "mono error";
    result.textContent = `data is not JSON: ${err.message}`;
    return;
  }
  const body = { channel: $("api-channel").value.trim(), data, durable: $("api-durable").checked };
  result.textContent = "publishing…";
  try {
    const res = await fetch(config.api + "publish", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    result.className = res.ok ? "mono ok" : "mono error";
    result.textContent = `${res.status} ${res.statusText} ${text}`.trim();
  } catch (err) {
    result.className = "mono error";
    result.textContent = `publish failed: ${err.message}`;
  }
};

if (params.has("user")) $("user").value = params.get("user");
connect($("user").value);
