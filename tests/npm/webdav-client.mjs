// Drives davgw through the npm `webdav` client (5.x), the WebDAV client
// most web and Electron apps use, and reports each scenario as one JSON
// line on stdout:
//
//   {"scenario": "...", "ok": true|false, "error": "...", "s3": {...}, "quota": {...}}
//
// "s3" says what S3 must hold at that moment (paths relative to DAV_DIR):
// {"files": {"rel": {"size": n, "sha256": "hex"}}, "absent": ["rel"],
// "folders": ["rel"]}; "quota" carries what getQuota returned. After each
// line the script waits for one line on stdin, so that tests/npmwebdav_test.go
// can check S3 before anything else changes.
//
// Environment: DAVGW_NPM_WEBDAV (the folder .ci/npm-webdav.sh installed),
// DAV_URL (http://127.0.0.1:PORT/dav/), DAV_USER, DAV_PASS, DAV_DIR (a
// fresh folder name in the user's root).

import { createRequire } from "node:module";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";
import readline from "node:readline";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const moduleDir = env("DAVGW_NPM_WEBDAV");
const entry = createRequire(path.join(moduleDir, "package.json")).resolve("webdav");
const { createClient } = await import(pathToFileURL(entry).href);
const webdavVersion = JSON.parse(readFileSync(path.join(moduleDir, "node_modules", "webdav", "package.json"), "utf8")).version;

const url = env("DAV_URL");
const dir = "/" + env("DAV_DIR");
const client = createClient(url, { username: env("DAV_USER"), password: env("DAV_PASS") });

const stdin = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let failures = 0;

// report prints one scenario's line and waits for the test's go-ahead.
async function report(line) {
  if (!line.ok) failures++;
  process.stdout.write(JSON.stringify(line) + "\n");
  const next = await stdin.next();
  if (next.done) throw new Error("the test closed stdin");
}

// scenario runs fn, which returns the S3 expectations (or nothing) or
// throws with what went wrong.
async function scenario(name, fn) {
  try {
    const extra = (await fn()) || {};
    await report({ scenario: name, ok: true, ...extra });
  } catch (err) {
    await report({ scenario: name, ok: false, error: String(err && err.stack || err) });
  }
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}
function eq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}
// rejects runs fn, which must fail with the HTTP status want as the
// client surfaces it (err.status).
async function rejects(fn, want, what) {
  try {
    await fn();
  } catch (err) {
    eq(err.status, want, `${what}: status`);
    return err;
  }
  throw new Error(`${what}: succeeded, want status ${want}`);
}
const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");
const file = (buf) => ({ size: buf.length, sha256: sha256(buf) });
const p = (rel) => `${dir}/${rel}`;

// The files: names with spaces, non-ASCII letters and characters URLs
// must escape; contents binary, text and big enough for multipart.
const TXT = "Grüße/naïve café ☕.txt";
const TEXT = "Grüße, naïve café ☕\nzweite Zeile: ÄÖÜ äöü ß €\n";
const BIN = "with space/data 1.bin";
const BINDATA = randomBytes(256 * 1024 + 13);
const BIG = "with space/stream 大.bin";
const BIGDATA = randomBytes(6 * 1024 * 1024 + 1); // past the gateway's 5 MiB part
const PIPED = "with space/piped #1 ?&+%.bin";
const PIPEDDATA = randomBytes(100 * 1024 + 7);
const DEEP = "with space/deeper/deepest";

// chunks yields buf in 64 KiB slices, as a file stream would.
function* chunks(buf) {
  for (let i = 0; i < buf.length; i += 65536) yield buf.subarray(i, i + 65536);
}

await scenario(`the client is webdav ${webdavVersion}`, async () => {
  check(/^5\./.test(webdavVersion), `want 5.x, have ${webdavVersion}`);
});

await scenario("a wrong password surfaces 401", async () => {
  const bad = createClient(url, { username: env("DAV_USER"), password: "not-the-password" });
  await rejects(() => bad.stat("/"), 401, "stat with a wrong password");
});

await scenario("getDAVCompliance lists class 1 and 2", async () => {
  const c = await client.getDAVCompliance("/");
  check(c.compliance.includes("1") && c.compliance.includes("2"), `DAV header gave ${JSON.stringify(c.compliance)}`);
});

await scenario("createDirectory makes folders, recursive ones too", async () => {
  await client.createDirectory(dir);
  await client.createDirectory(p("Grüße"));
  await client.createDirectory(p(DEEP), { recursive: true });
  await rejects(() => client.createDirectory(p("Grüße")), 405, "MKCOL of an existing folder");
  return { s3: { folders: ["Grüße", "with space", "with space/deeper", DEEP] } };
});

await scenario("putFileContents uploads a Buffer", async () => {
  eq(await client.putFileContents(p(BIN), BINDATA), true, "putFileContents");
  return { s3: { files: { [BIN]: file(BINDATA) } } };
});

await scenario("putFileContents uploads a UTF-8 string", async () => {
  eq(await client.putFileContents(p(TXT), TEXT), true, "putFileContents");
  return { s3: { files: { [TXT]: file(Buffer.from(TEXT, "utf8")) } } };
});

await scenario("putFileContents uploads a stream (chunked, multipart)", async () => {
  eq(await client.putFileContents(p(BIG), Readable.from(chunks(BIGDATA))), true, "putFileContents");
  return { s3: { files: { [BIG]: file(BIGDATA) } } };
});

await scenario("createWriteStream uploads a piped stream", async () => {
  let status = 0;
  const done = new Promise((resolve) => {
    const ws = client.createWriteStream(p(PIPED), {}, (res) => { status = res.status; resolve(); });
    pipeline(Readable.from(chunks(PIPEDDATA)), ws).catch(resolve);
  });
  await done;
  eq(status, 201, "PUT status");
  return { s3: { files: { [PIPED]: file(PIPEDDATA) } } };
});

await scenario("putFileContents with overwrite false keeps an existing file (412)", async () => {
  eq(await client.putFileContents(p(BIN), Buffer.from("other"), { overwrite: false }), false, "putFileContents");
  return { s3: { files: { [BIN]: file(BINDATA) } } };
});

await scenario("stat of a file", async () => {
  const st = await client.stat(p(BIN));
  eq([st.filename, st.basename, st.type, st.size, st.mime], [p(BIN), "data 1.bin", "file", BINDATA.length, "application/octet-stream"], "stat");
  check(typeof st.etag === "string" && st.etag.length > 0, `etag ${st.etag}`);
  const age = Date.now() - Date.parse(st.lastmod);
  check(age > -300000 && age < 300000, `lastmod ${st.lastmod}`);
});

await scenario("stat of a non-ASCII file and folder", async () => {
  const st = await client.stat(p(TXT));
  eq([st.filename, st.basename, st.type, st.size], [p(TXT), "naïve café ☕.txt", "file", Buffer.byteLength(TEXT)], "stat of the file");
  const d = await client.stat(p("Grüße"));
  eq([d.filename, d.basename, d.type], [p("Grüße"), "Grüße", "directory"], "stat of the folder");
});

await scenario("stat of a missing file surfaces 404", async () => {
  await rejects(() => client.stat(p("nope.txt")), 404, "stat");
});

await scenario("exists", async () => {
  eq(await Promise.all([p(BIN), p(PIPED), p("Grüße"), p("nope.txt"), p("nope/")].map((x) => client.exists(x))),
    [true, true, true, false, false], "exists of file, odd-named file, folder, missing, missing folder");
});

// entries is a listing as [filename, type, size] sorted by name.
const entries = (list) => list.map((f) => [f.filename, f.type, f.type === "file" ? f.size : 0]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
const tree = {
  [p("Grüße")]: ["directory", 0],
  [p(TXT)]: ["file", Buffer.byteLength(TEXT)],
  [p("with space")]: ["directory", 0],
  [p(BIN)]: ["file", BINDATA.length],
  [p(BIG)]: ["file", BIGDATA.length],
  [p(PIPED)]: ["file", PIPEDDATA.length],
  [p("with space/deeper")]: ["directory", 0],
  [p(DEEP)]: ["directory", 0],
};
const expectUnder = (prefix, deep) => Object.entries(tree)
  .filter(([name]) => name.startsWith(prefix + "/") && (deep || !name.slice(prefix.length + 1).includes("/")))
  .map(([name, [type, size]]) => [name, type, size]).sort((a, b) => (a[0] < b[0] ? -1 : 1));

await scenario("getDirectoryContents lists one level exactly", async () => {
  eq(entries(await client.getDirectoryContents(dir)), expectUnder(dir, false), "listing of the folder");
  eq(entries(await client.getDirectoryContents(p("with space"))), expectUnder(p("with space"), false), "listing of with space");
});

await scenario("getDirectoryContents deep is refused with 403 (Depth infinity)", async () => {
  await rejects(() => client.getDirectoryContents(dir, { deep: true }), 403, "deep listing");
});

await scenario("a deep listing walked one level at a time is exact", async () => {
  const all = [];
  const walk = async (d) => {
    for (const f of await client.getDirectoryContents(d)) {
      all.push(f);
      if (f.type === "directory") await walk(f.filename);
    }
  };
  await walk(dir);
  eq(entries(all), expectUnder(dir, true), "walked listing");
});

await scenario("getFileContents returns binary bytes exactly", async () => {
  const got = await client.getFileContents(p(BIN));
  check(Buffer.isBuffer(got), "not a Buffer");
  eq(sha256(got), sha256(BINDATA), "sha256");
  const big = await client.getFileContents(p(BIG));
  eq([big.length, sha256(big)], [BIGDATA.length, sha256(BIGDATA)], "multipart file");
});

await scenario("getFileContents returns text exactly", async () => {
  eq(await client.getFileContents(p(TXT), { format: "text" }), TEXT, "text");
});

await scenario("getFileContents with a Range header gets 206 and the bytes", async () => {
  const r = await client.getFileContents(p(BIN), { details: true, headers: { Range: "bytes=1000-1999" } });
  eq([r.status, r.headers["content-range"], r.data.length], [206, `bytes 1000-1999/${BINDATA.length}`, 1000], "range answer");
  check(r.data.equals(BINDATA.subarray(1000, 2000)), "range bytes differ");
  const tail = await client.getFileContents(p(BIN), { details: true, headers: { Range: "bytes=-100" } });
  eq([tail.status, tail.headers["content-range"]], [206, `bytes ${BINDATA.length - 100}-${BINDATA.length - 1}/${BINDATA.length}`], "suffix range");
  check(tail.data.equals(BINDATA.subarray(BINDATA.length - 100)), "suffix bytes differ");
  await rejects(() => client.getFileContents(p(BIN), { headers: { Range: `bytes=${BINDATA.length}-` } }), 416, "range past the end");
});

// readAll reads a stream whole.
async function readAll(stream) {
  const parts = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

await scenario("createReadStream with a range reads exactly those bytes", async () => {
  const start = 5 * 1024 * 1024 - 1000, end = 5 * 1024 * 1024 + 299999; // across the first part's end
  const got = await readAll(client.createReadStream(p(BIG), { range: { start, end } }));
  eq([got.length, sha256(got)], [end - start + 1, sha256(BIGDATA.subarray(start, end + 1))], "ranged stream");
  const open = await readAll(client.createReadStream(p(BIG), { range: { start: BIGDATA.length - 10 } }));
  check(open.equals(BIGDATA.subarray(BIGDATA.length - 10)), "open-ended range differs");
  const whole = await readAll(client.createReadStream(p(TXT)));
  eq(whole.toString("utf8"), TEXT, "whole stream");
});

const MOVED = "Grüße/moved ü 1.bin";
await scenario("moveFile renames a file into another folder", async () => {
  await client.moveFile(p(BIN), p(MOVED));
  eq(await client.exists(p(BIN)), false, "old name exists");
  return { s3: { files: { [MOVED]: file(BINDATA) }, absent: [BIN] } };
});

await scenario("moveFile with overwrite false onto a file surfaces 412", async () => {
  await rejects(() => client.moveFile(p(MOVED), p(TXT), { overwrite: false }), 412, "moveFile");
  return { s3: { files: { [MOVED]: file(BINDATA), [TXT]: file(Buffer.from(TEXT)) } } };
});

await scenario("moveFile onto an existing file replaces it", async () => {
  const other = Buffer.from("replace me");
  await client.putFileContents(p("Grüße/target.txt"), other);
  await client.moveFile(p(PIPED), p("Grüße/target.txt"));
  return { s3: { files: { "Grüße/target.txt": file(PIPEDDATA) }, absent: [PIPED] } };
});

await scenario("moveFile of a folder is refused with 403 (S3 has no folder rename)", async () => {
  await rejects(() => client.moveFile(p("with space"), p("renamed folder")), 403, "moveFile of a folder");
  return { s3: { files: { [BIG]: file(BIGDATA) }, folders: [DEEP], absent: ["renamed folder/"] } };
});

const COPY = "with space/copy of café.txt";
await scenario("copyFile copies a file", async () => {
  await client.copyFile(p(TXT), p(COPY));
  eq(await client.getFileContents(p(COPY), { format: "text" }), TEXT, "copy's text");
  return { s3: { files: { [TXT]: file(Buffer.from(TEXT)), [COPY]: file(Buffer.from(TEXT)) } } };
});

await scenario("copyFile with overwrite false onto a file surfaces 412", async () => {
  await rejects(() => client.copyFile(p(MOVED), p(COPY), { overwrite: false }), 412, "copyFile");
  return { s3: { files: { [COPY]: file(Buffer.from(TEXT)) } } };
});

await scenario("copyFile copies a folder tree", async () => {
  await client.copyFile(p("Grüße"), p("copied Grüße"));
  eq(entries(await client.getDirectoryContents(p("copied Grüße"))).map((e) => e[0]),
    [p("copied Grüße/moved ü 1.bin"), p("copied Grüße/naïve café ☕.txt"), p("copied Grüße/target.txt")], "copied listing");
  return { s3: { files: {
    "copied Grüße/moved ü 1.bin": file(BINDATA),
    "copied Grüße/naïve café ☕.txt": file(Buffer.from(TEXT)),
    "copied Grüße/target.txt": file(PIPEDDATA),
    [MOVED]: file(BINDATA),
  } } };
});

await scenario("partialUpdateFileContents is not offered (the client refuses before sending)", async () => {
  try {
    await client.partialUpdateFileContents(p(COPY), 0, 3, Buffer.from("XXXX"));
    throw new Error("partialUpdateFileContents succeeded");
  } catch (err) {
    check(/Not supported/.test(String(err.message)), `error ${err}`);
  }
  return { s3: { files: { [COPY]: file(Buffer.from(TEXT)) } } };
});

await scenario("a PUT with Content-Range (Apache-style partial update) is refused with 400", async () => {
  const escaped = p(COPY).split("/").map(encodeURIComponent).join("/");
  await rejects(() => client.customRequest(escaped, {
    method: "PUT", headers: { "Content-Range": "bytes 0-3/*", "Content-Type": "application/octet-stream" }, data: Buffer.from("XXXX"),
  }), 400, "PUT with Content-Range");
  return { s3: { files: { [COPY]: file(Buffer.from(TEXT)) } } };
});

await scenario("lock, a write without the token (423), a write with it, unlock", async () => {
  const lock = await client.lock(p(TXT));
  try {
    check(/^(opaquelocktoken|urn:uuid):/.test(lock.token), `token ${lock.token}`);
    eq(lock.serverTimeout, "Second-3600", "timeout (the client asks for Infinite)");
    await rejects(() => client.putFileContents(p(TXT), "no token"), 423, "PUT without the token");
    await rejects(() => client.deleteFile(p(TXT)), 423, "DELETE without the token");
    await rejects(() => client.moveFile(p(TXT), p("Grüße/elsewhere.txt")), 423, "MOVE without the token");
    const other = createClient(url, { username: env("DAV_USER"), password: env("DAV_PASS") });
    await rejects(() => other.lock(p(TXT)), 423, "a second exclusive lock");
    eq(await client.putFileContents(p(TXT), TEXT + "locked edit\n", { headers: { If: `(<${lock.token}>)` } }), true, "PUT with the token");
  } finally {
    await client.unlock(p(TXT), lock.token);
  }
  await rejects(() => client.unlock(p(TXT), lock.token), 409, "UNLOCK of a released lock");
  eq(await client.putFileContents(p(TXT), TEXT), true, "PUT after unlock");
  return { s3: { files: { [TXT]: file(Buffer.from(TEXT)) } } };
});

await scenario("lock with refreshToken refreshes the lock", async () => {
  const lock = await client.lock(p(TXT), { timeout: "Second-60" });
  try {
    eq(lock.serverTimeout, "Second-60", "timeout");
    const again = await client.lock(p(TXT), { refreshToken: `(<${lock.token}>)`, timeout: "Second-120" });
    eq([again.token, again.serverTimeout], [lock.token, "Second-120"], "refresh");
  } finally {
    await client.unlock(p(TXT), lock.token);
  }
});

await scenario("lock of a new name makes an empty file, written with the token", async () => {
  const lock = await client.lock(p("Grüße/reserved.txt"));
  try {
    const st = await client.stat(p("Grüße/reserved.txt"));
    eq([st.type, st.size], ["file", 0], "stat of the locked new name");
    eq(await client.putFileContents(p("Grüße/reserved.txt"), "mine", { headers: { If: `(<${lock.token}>)` } }), true, "PUT with the token");
  } finally {
    await client.unlock(p("Grüße/reserved.txt"), lock.token);
  }
  return { s3: { files: { "Grüße/reserved.txt": file(Buffer.from("mine")) } } };
});

await scenario("deleteFile removes a file", async () => {
  await client.deleteFile(p(COPY));
  eq(await client.exists(p(COPY)), false, "exists after delete");
  await rejects(() => client.deleteFile(p(COPY)), 404, "second delete");
  return { s3: { absent: [COPY] } };
});

await scenario("deleteFile removes a folder tree", async () => {
  await client.deleteFile(p("copied Grüße"));
  eq(await client.exists(p("copied Grüße")), false, "exists after delete");
  return { s3: { absent: ["copied Grüße/", "copied Grüße/moved ü 1.bin", "copied Grüße/naïve café ☕.txt", "copied Grüße/target.txt"] } };
});

await scenario("getQuota without a body gets null (quota is not in allprop)", async () => {
  eq(await client.getQuota(), null, "getQuota()");
});

const QUOTA_BODY = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop>' +
  "<d:quota-available-bytes/><d:quota-used-bytes/></d:prop></d:propfind>";
await scenario("getQuota naming the quota properties gets used and available bytes", async () => {
  const q = await client.getQuota({ data: QUOTA_BODY });
  check(q && Number.isInteger(q.used) && Number.isInteger(q.available), `getQuota gave ${JSON.stringify(q)}`);
  return { quota: q };
});

await scenario("deleteFile removes the whole test folder", async () => {
  await client.deleteFile(dir);
  eq(await client.exists(dir), false, "exists after delete");
  return { s3: { absent: ["", TXT, MOVED, BIG, "Grüße/target.txt", "Grüße/reserved.txt"] } };
});

process.stdout.write(JSON.stringify({ done: true, failures }) + "\n");
process.exit(0);
