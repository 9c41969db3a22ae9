// Porthole from a real browser: headless Chromium (Debian's `chromium`) loads
// pages from two loopback origins and uses the daemon as a web page would.
//
// - The allowed page binds with the token (a CORS preflight first), asks for
//   a stream ticket, opens the stream with the standard EventSource (which
//   cannot send headers) and receives a datagram sent to the bound port.
// - The refused page (another origin) tries a cross-site bind, both as a
//   "simple" no-cors text/plain POST (no preflight) and as a CORS request;
//   neither creates a binding.
//
// Run from the repository root after `cargo build --bin porthole`:
//   node tests/browser/run.mjs
// Environment: PORTHOLE_BIN (default target/debug/porthole), CHROMIUM
// (default /usr/bin/chromium). Everything listens on 127.0.0.1 and is
// stopped at the end; the whole run is bounded by a timeout.

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import http from "node:http";
import { once } from "node:events";
import { existsSync } from "node:fs";
import puppeteer from "puppeteer-core";

const BIN = process.env.PORTHOLE_BIN ?? "target/debug/porthole";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "browser-test-token";
const DEADLINE_MS = 60_000;

const results = [];
function record(name, ok, detail = "") {
  results.push({ name, ok });
  console.log(`${ok ? "ok" : "FAILED"}: ${name}${detail ? ` (${detail})` : ""}`);
}

/** Serves one HTML page on 127.0.0.1 at an OS-chosen port. */
async function pageServer(html) {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

/** Starts the daemon; resolves with its base URL once it prints its address. */
async function startDaemon(allowOrigin, token) {
  const args = ["serve", "--listen", "127.0.0.1:0", "--allow-origin", allowOrigin];
  if (token) args.push("--token", token);
  const daemon = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const url = await new Promise((resolve, reject) => {
    daemon.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    daemon.on("exit", (code) => reject(new Error(`daemon exited with ${code}`)));
  });
  return { daemon, url };
}

/** GET /v1/udp/status, from Node (not a browser). */
async function bindings(url) {
  const res = await fetch(`${url}/v1/udp/status`);
  return (await res.json()).bindings;
}

const allowedPage = `<!doctype html><title>allowed</title><script>
window.run = async (api, token) => {
  const auth = { authorization: "Bearer " + token, "content-type": "application/json" };
  const bind = await fetch(api + "/v1/udp/bind", { method: "POST", headers: auth, body: "{}" });
  if (bind.status !== 201) throw new Error("bind: " + bind.status);
  const binding = await bind.json();
  const t = await fetch(api + "/v1/udp/recv/" + binding.id + "/ticket", { method: "POST", headers: auth });
  if (t.status !== 200) throw new Error("ticket: " + t.status);
  const { ticket } = await t.json();
  const source = new EventSource(api + "/v1/udp/recv/" + binding.id + "?ticket=" + ticket);
  window.received = new Promise((resolve, reject) => {
    source.addEventListener("datagram", (e) => {
      source.close();
      resolve({ id: e.lastEventId, data: JSON.parse(e.data) });
    });
    source.onerror = () => reject(new Error("EventSource failed"));
  });
  await new Promise((resolve, reject) => {
    source.onopen = resolve;
    setTimeout(() => reject(new Error("EventSource did not open")), 10000);
  });
  return binding;
};
</script>`;

const refusedPage = `<!doctype html><title>refused</title><script>
window.attack = async (api) => {
  // A "simple" request: no preflight, the browser sends it and hides the answer.
  await fetch(api + "/v1/udp/bind", {
    method: "POST", mode: "no-cors",
    headers: { "content-type": "text/plain" }, body: '{"port": 47999}',
  }).catch(() => {});
  // A CORS request: the answer has no Access-Control-Allow-Origin, so it fails.
  let corsBlocked = false;
  try {
    await fetch(api + "/v1/udp/bind", { method: "POST", body: "{}" });
  } catch (_) {
    corsBlocked = true;
  }
  return corsBlocked;
};
</script>`;

async function main() {
  if (!existsSync(BIN)) throw new Error(`${BIN} not found: run cargo build --bin porthole first`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install chromium`);
  const allowed = await pageServer(allowedPage);
  const refused = await pageServer(refusedPage);
  const allowedOrigin = `http://127.0.0.1:${allowed.address().port}`;
  const refusedOrigin = `http://localhost:${refused.address().port}`;
  // With a token, for the page that holds it; without one, so that only the
  // origin check stands between the refused page and a binding.
  const { daemon, url } = await startDaemon(allowedOrigin, TOKEN);
  const open = await startDaemon(allowedOrigin, null);
  const udp = dgram.createSocket("udp4");
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(allowedOrigin);
    const binding = await page.evaluate((api, token) => window.run(api, token), url, TOKEN);
    record("an allowed page binds with the token through a CORS preflight", !!binding.id);
    const port = Number(binding.local_addr.split(":").pop());
    udp.send(Buffer.from("hello browser"), port, "127.0.0.1");
    const got = await page.evaluate(() => window.received);
    const text = Buffer.from(got.data.payload, "base64").toString();
    record(
      "EventSource opened with a ticket receives the datagram",
      text === "hello browser" && got.id === "1",
      `payload ${JSON.stringify(text)}, id ${got.id}`,
    );

    const evil = await browser.newPage();
    await evil.goto(refusedOrigin);
    const before = (await bindings(open.url)).length;
    const corsBlocked = await evil.evaluate((api) => window.attack(api), open.url);
    const after = await bindings(open.url);
    record("a refused origin's CORS request is blocked", corsBlocked);
    record(
      "a refused origin's no-cors text/plain bind creates nothing",
      after.length === before && !after.some((b) => b.local_addr.endsWith(":47999")),
      `${before} -> ${after.length} bindings`,
    );
  } finally {
    await browser.close();
    udp.close();
    allowed.close();
    refused.close();
    for (const d of [daemon, open.daemon]) {
      d.kill("SIGTERM");
      await once(d, "exit");
    }
  }
}

const timer = setTimeout(() => {
  console.error(`browser test: no result within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);
try {
  await main();
} catch (e) {
  record("browser test ran to the end", false, e.message);
}
clearTimeout(timer);
const failed = results.filter((r) => !r.ok).length;
console.log(`browser: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
