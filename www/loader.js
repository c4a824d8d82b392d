// Weights for the runtime's ShardSource (web/src/session.rs): the manifest
// fresh from the network, shards from Cache Storage when a previous visit
// stored them, else fetched (several at once) with HTTP Range resumption of
// an interrupted download, checked against the manifest's sha256 before
// they are used or stored. Nothing that fails its check is cached.

const CACHE = "framecast-shards-v1";
const PARALLEL = 4;
const RETRIES = 6;

export class LoadError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function openCache() {
  try {
    return typeof caches === "undefined" ? null : await caches.open(CACHE);
  } catch {
    return null; // e.g. storage disabled: everything still works, uncached
  }
}

/**
 * A fetcher for one bundle URL (a folder with manifest.json).
 * `onProgress({file, done, total, fromCache, bytesDone, bytesTotal, shardsDone, shardsTotal})`
 * `onWarning(message)` for a cache that cannot store (quota).
 */
export function createFetcher(baseUrl, { onProgress = () => {}, onWarning = () => {} } = {}) {
  const base = new URL(baseUrl.endsWith("/") ? baseUrl : baseUrl + "/", self.location.href);
  const pending = new Map();
  const state = { bytesTotal: 0, bytesDone: 0, shardsTotal: 0, shardsDone: 0, fromNetwork: 0, fromCache: 0 };
  let queue = [];
  let active = 0;
  let cachePromise = null;
  const cache = () => (cachePromise ??= openCache());

  const report = (file, extra) => onProgress({ file, ...state, ...extra });

  async function download(entry) {
    const url = new URL(entry.file, base).href;
    const store = await cache();
    const hit = store && (await store.match(url));
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if (bytes.length === entry.bytes && (await sha256Hex(bytes)) === entry.sha256) {
        state.bytesDone += bytes.length;
        state.shardsDone += 1;
        state.fromCache += 1;
        report(entry.file, { fromCache: true });
        return bytes;
      }
      await store.delete(url); // a damaged copy: fetch it again
    }
    const chunks = [];
    let received = 0;
    let failures = 0;
    while (received < entry.bytes) {
      try {
        const headers = received > 0 ? { Range: `bytes=${received}-` } : {};
        const resp = await fetch(url, { headers, cache: "no-store" });
        if (received > 0 && resp.status === 200) {
          // The server ignored the range: start over from its full answer.
          state.bytesDone -= received;
          chunks.length = 0;
          received = 0;
        } else if (!resp.ok) {
          throw new LoadError("network", `${entry.file}: HTTP ${resp.status} ${resp.statusText}`);
        }
        const reader = resp.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
          received += value.length;
          state.bytesDone += value.length;
          report(entry.file, { fromCache: false });
        }
        if (received < entry.bytes) throw new Error("connection closed early");
      } catch (e) {
        if (e instanceof LoadError) throw e;
        failures += 1;
        if (failures > RETRIES) {
          throw new LoadError(
            "network",
            `downloading ${entry.file} failed ${failures} times (${e.message}); check the connection and load the model again`,
          );
        }
        await sleep(250 * 2 ** failures);
      }
    }
    const bytes = new Uint8Array(received);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    const found = bytes.length === entry.bytes ? await sha256Hex(bytes) : `${bytes.length} bytes`;
    if (found !== entry.sha256) {
      throw new LoadError(
        "integrity",
        `shard ${entry.file} is corrupt (sha256 ${found.slice(0, 16)}…, the manifest says ${entry.sha256.slice(0, 16)}…); ` +
          "it was not stored. Load the model again; if this persists, the model host is serving a damaged file",
      );
    }
    state.shardsDone += 1;
    state.fromNetwork += 1;
    report(entry.file, { fromCache: false });
    if (store) {
      try {
        await store.put(url, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }));
      } catch (e) {
        onWarning(
          `the browser would not store the model (${e.name === "QuotaExceededError" ? "storage quota exceeded" : e.message}): ` +
            "it works now, but will download again on the next visit. Free some site storage to keep it",
        );
      }
    }
    return bytes;
  }

  function pump() {
    while (active < PARALLEL && queue.length > 0) {
      const { entry, resolve, reject } = queue.shift();
      active += 1;
      download(entry)
        .then(resolve, reject)
        .finally(() => {
          active -= 1;
          pump();
        });
    }
  }

  function start(entry) {
    if (!pending.has(entry.file)) {
      const p = new Promise((resolve, reject) => {
        queue.push({ entry, resolve, reject });
        pump();
      });
      p.catch(() => {}); // reported when the loader asks for this shard
      pending.set(entry.file, p);
    }
    return pending.get(entry.file);
  }

  return {
    state,
    async manifest() {
      const url = new URL("manifest.json", base).href;
      let resp;
      try {
        resp = await fetch(url, { cache: "no-cache" });
      } catch (e) {
        throw new LoadError("network", `could not reach ${url} (${e.message})`);
      }
      if (!resp.ok) throw new LoadError("network", `${url}: HTTP ${resp.status} ${resp.statusText}`);
      const bytes = new Uint8Array(await resp.arrayBuffer());
      const manifest = JSON.parse(new TextDecoder().decode(bytes));
      state.shardsTotal = manifest.shards.length;
      state.bytesTotal = manifest.shards.reduce((s, x) => s + x.bytes, 0);
      // Fetch ahead in the loader's order, a few at a time.
      for (const s of manifest.shards) start(s);
      return bytes;
    },
    shard(entry) {
      return start(entry);
    },
  };
}
