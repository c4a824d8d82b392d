// The static server's contract: MIME types, Range requests, no escape from root.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { parseRange, startServer } from "./server.mjs";

let dir, server;
const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "framecast-serve-"));
  await writeFile(path.join(dir, "m.wasm"), bytes);
  await writeFile(path.join(dir, "index.html"), "<!doctype html>");
  server = await startServer({ root: dir });
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

test("binds to 127.0.0.1 on an ephemeral port", () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
});

test("serves wasm as application/wasm, whole and by range", async () => {
  const whole = await fetch(server.url + "m.wasm");
  assert.equal(whole.status, 200);
  assert.equal(whole.headers.get("content-type"), "application/wasm");
  assert.equal(whole.headers.get("accept-ranges"), "bytes");
  assert.deepEqual(Buffer.from(await whole.arrayBuffer()), bytes);

  const part = await fetch(server.url + "m.wasm", { headers: { Range: "bytes=100-199" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("content-range"), "bytes 100-199/1000");
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(100, 200));

  const tail = await fetch(server.url + "m.wasm", { headers: { Range: "bytes=-10" } });
  assert.equal(tail.status, 206);
  assert.deepEqual(Buffer.from(await tail.arrayBuffer()), bytes.subarray(990));

  const past = await fetch(server.url + "m.wasm", { headers: { Range: "bytes=1000-" } });
  assert.equal(past.status, 416);
  assert.equal(past.headers.get("content-range"), "bytes */1000");
});

test("directories serve index.html; nothing outside the root", async () => {
  const index = await fetch(server.url);
  assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
  const escape = await fetch(server.url + "..%2f..%2fetc%2fpasswd");
  assert.ok([403, 404].includes(escape.status), `got ${escape.status}`);
  assert.equal((await fetch(server.url + "missing.js")).status, 404);
});

test("parseRange", () => {
  assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange("bytes=5-", 10), { start: 5, end: 9 });
  assert.deepEqual(parseRange("bytes=5-100", 10), { start: 5, end: 9 });
  assert.deepEqual(parseRange("bytes=-3", 10), { start: 7, end: 9 });
  assert.equal(parseRange("bytes=0-1,4-5", 10), null);
  assert.equal(parseRange("bytes=7-3", 10), null);
  assert.equal(parseRange(undefined, 10), null);
  assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
});
