package tests

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// What the Windows Mini-Redirector sends (CLIENTS.md, "Windows Explorer"):
// translate: f on every request, XML bodies starting with an XML
// declaration with a space before "?>", LOCK without Depth and with a
// one-hour timeout, PROPPATCH of the Win32 properties around each save.

const windowsUA = "Microsoft-WebDAV-MiniRedir/10.0.19045"

var windowsHeaders = map[string]string{"User-Agent": windowsUA, "translate": "f"}

const windowsLock = `<?xml version="1.0" encoding="utf-8" ?>` +
	`<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>` +
	`<D:owner><D:href>DESKTOP-7Q1AB2C\alice</D:href></D:owner></D:lockinfo>`

// windowsTimes are the Win32 properties Explorer sets when a file is copied
// in: creation, access and modification times of the source file.
var (
	windowsCreated  = time.Date(2021, 6, 1, 8, 0, 0, 0, time.UTC)
	windowsModified = time.Date(2023, 3, 1, 10, 20, 30, 0, time.UTC)
)

// win32PropPatch is Explorer's PROPPATCH; attributes 00000020 = archive,
// 00000010 = directory, 00002002 = hidden + not indexed (Office owner files).
func win32PropPatch(created, modified time.Time, attributes string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8" ?>` +
		`<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>` +
		`<Z:Win32CreationTime>` + created.Format(http.TimeFormat) + `</Z:Win32CreationTime>` +
		`<Z:Win32LastAccessTime>` + modified.Format(http.TimeFormat) + `</Z:Win32LastAccessTime>` +
		`<Z:Win32LastModifiedTime>` + modified.Format(http.TimeFormat) + `</Z:Win32LastModifiedTime>` +
		`<Z:Win32FileAttributes>` + attributes + `</Z:Win32FileAttributes>` +
		`</D:prop></D:set></D:propertyupdate>`)
}

// win32Attributes is the PROPPATCH of attributes only (new folders, hidden files).
func win32Attributes(attributes string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8" ?>` +
		`<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>` +
		`<Z:Win32FileAttributes>` + attributes + `</Z:Win32FileAttributes>` +
		`</D:prop></D:set></D:propertyupdate>`)
}

const msNS = "urn:schemas-microsoft-com: "

// TestWindowsExplorer replays what Windows Explorer's Mini-Redirector sends
// on a drive mapped to https://host/dav/, over HTTPS and HTTP/2, on every
// back end, and checks the answers and what S3 then holds.
func TestWindowsExplorer(t *testing.T) {
	forEachBackend(t, backendNames, func(t *testing.T, e *davEnv) {
		w := newTLSClientApp(t, e, "Windows", windowsHeaders)
		for _, c := range windowsCases() {
			t.Run(c.name, func(t *testing.T) { c.run(t, e, w) })
		}
	})
}

type windowsCase struct {
	name string
	run  func(t *testing.T, e *davEnv, w *clientApp)
}

func windowsCases() []windowsCase {
	return []windowsCase{
		{"mapping the drive asks OPTIONS at the server root without credentials and PROPFINDs /dav without a slash", func(t *testing.T, e *davEnv, w *clientApp) {
			probe := newTLSClientAppSharing(w, map[string]string{"User-Agent": "DavClnt"})
			expect(t, "DavClnt OPTIONS /dav/", probe.send(t, call{Method: http.MethodOptions, Path: "/dav/", Anonymous: true}), http.StatusOK)
			r := w.send(t, call{Method: http.MethodOptions, Path: "/", Anonymous: true})
			expect(t, "OPTIONS / without credentials", r, http.StatusOK)
			if w.proto != "HTTP/2.0" {
				t.Errorf("the gateway answered over %s; Windows may speak HTTP/2 over TLS", w.proto)
			}
			if dav := strings.ReplaceAll(r.Header.Get("DAV"), " ", ""); !strings.HasPrefix(dav, "1,2") {
				t.Errorf("DAV = %q, want 1, 2", r.Header.Get("DAV"))
			}
			if got := r.Header.Get("MS-Author-Via"); got != "DAV" {
				t.Errorf("MS-Author-Via = %q, want DAV", got)
			}
			allow := strings.ToUpper(strings.Join(r.Header.Values("Allow"), ","))
			for _, m := range []string{"LOCK", "UNLOCK", "PROPPATCH"} {
				if !strings.Contains(allow, m) {
					t.Errorf("Allow = %q lacks %s", allow, m)
				}
			}
			if x := r.Header.Get("X-MSDAVEXT"); x != "" {
				t.Errorf("X-MSDAVEXT = %q: Windows then expects the MS-WDV extensions", x)
			}
			for _, depth := range []string{"0", "1"} {
				p := w.send(t, call{Method: "PROPFIND", Path: "/dav", Header: map[string]string{"Depth": depth}, Body: []byte{}})
				if p.Status == http.StatusMovedPermanently || p.Status == http.StatusFound {
					t.Fatalf("PROPFIND /dav Depth %s redirected (%d to %q): Windows shows an empty folder", depth, p.Status, p.Header.Get("Location"))
				}
				expect(t, "PROPFIND /dav Depth "+depth+" (allprop)", p, http.StatusMultiStatus)
				if !bytes.Contains(p.Body, []byte("<D:multistatus")) {
					t.Errorf("the multistatus does not use the D: prefix Windows expects: %s", p)
				}
			}
		}},
		{"listing a folder gives sizes, ISO creation dates and plain 404s for desktop.ini and the other probes", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"report.pdf", bytes.Repeat([]byte("p"), 1234), "application/pdf")
			e.putS3(t, keyPrefix+"Sub/", nil, "")
			r := w.send(t, call{Method: "PROPFIND", Path: strings.TrimSuffix(dir, "/"), Header: map[string]string{"Depth": "1"}, Body: []byte{}})
			expect(t, "PROPFIND Depth 1 allprop", r, http.StatusMultiStatus)
			list := byPath(t, r)
			f, ok := list[dir+"report.pdf"]
			if !ok {
				t.Fatalf("the listing lacks report.pdf: %s", r)
			}
			if got := f.Props["DAV: getcontentlength"].Text; got != "1234" {
				t.Errorf("getcontentlength = %q, want 1234", got)
			}
			if _, err := http.ParseTime(f.Props["DAV: getlastmodified"].Text); err != nil {
				t.Errorf("getlastmodified %q is not RFC 1123: %v", f.Props["DAV: getlastmodified"].Text, err)
			}
			if cd := f.Props["DAV: creationdate"].Text; cd != "" && !strings.HasSuffix(cd, "Z") {
				t.Errorf("creationdate = %q, want ISO 8601 ending in Z", cd)
			}
			plausibleTimes(t, "Depth 1 listing", list)
			if sub, ok := list[dir+"Sub"]; !ok || !sub.isCollection() {
				t.Errorf("the listing lacks the folder Sub: %s", r)
			}
			for _, probe := range []string{"desktop.ini", "folder.jpg", "folder.gif", "AutoRun.inf"} {
				p := w.send(t, call{Method: "PROPFIND", Path: dir + probe, Header: map[string]string{"Depth": "0"}, Body: []byte{}})
				expect(t, "PROPFIND of "+probe, p, http.StatusNotFound)
			}
		}},
		{"opening a file reads it whole with its ETag and Last-Modified", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			body := randBytes(300 << 10)
			etag := e.putS3(t, keyPrefix+"photo.jpg", body, "image/jpeg")
			onlyResponse(t, "PROPFIND Depth 0", w.send(t, call{Method: "PROPFIND", Path: dir + "photo.jpg", Header: map[string]string{"Depth": "0"}, Body: []byte{}}))
			g := w.send(t, call{Method: http.MethodGet, Path: dir + "photo.jpg"})
			expect(t, "GET", g, http.StatusOK)
			if !bytes.Equal(g.Body, body) {
				t.Errorf("GET returned %d bytes that differ from the %d stored", len(g.Body), len(body))
			}
			if g.Header.Get("ETag") != etag || g.Header.Get("Last-Modified") == "" {
				t.Errorf("GET: ETag %q (S3 %q), Last-Modified %q", g.Header.Get("ETag"), etag, g.Header.Get("Last-Modified"))
			}
		}},
		{"copying a file in runs PUT empty, LOCK, PROPPATCH, HEAD, PUT, PROPPATCH and UNLOCK and keeps the Win32 times", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			path := dir + "Budget%202024.xlsx"
			key := keyPrefix + "Budget 2024.xlsx"
			body := randBytes(2<<20 + 17)

			expect(t, "PROPFIND of the new name", w.send(t, call{Method: "PROPFIND", Path: path, Header: map[string]string{"Depth": "0"}, Body: []byte{}}), http.StatusNotFound)
			expect(t, "PUT empty", w.send(t, call{Method: http.MethodPut, Path: path, Body: []byte{}}), http.StatusCreated)
			l := w.send(t, call{Method: "LOCK", Path: path, Header: map[string]string{"Timeout": "Second-3600", "Content-Type": "text/xml; charset=\"utf-8\""}, Body: []byte(windowsLock)})
			expect(t, "LOCK without Depth", l, http.StatusOK)
			tok := strings.Trim(l.Header.Get("Lock-Token"), "<>")
			if tok == "" {
				t.Fatalf("LOCK answered no Lock-Token header: %s", l)
			}
			if got := lockTokenFromBody(t, l.Body); got != tok {
				t.Errorf("the LOCK body's token %q differs from the header's %q", got, tok)
			}
			if !bytes.Contains(l.Body, []byte("Second-3600")) || !bytes.Contains(l.Body, []byte(`DESKTOP-7Q1AB2C\alice`)) {
				t.Errorf("the lockdiscovery lacks the timeout or the owner: %s", l)
			}
			ifTok := map[string]string{"If": "(<" + tok + ">)"}
			allPropsOK(t, "PROPPATCH of the Win32 properties with If", w.send(t, call{Method: "PROPPATCH", Path: path, Header: ifTok,
				Body: win32PropPatch(windowsCreated, windowsModified, "00000020")}))
			h := w.send(t, call{Method: http.MethodHead, Path: path})
			expect(t, "HEAD", h, http.StatusOK)
			if h.Header.Get("Content-Length") != "0" {
				t.Errorf("HEAD of the empty file: Content-Length %q", h.Header.Get("Content-Length"))
			}
			p := w.send(t, call{Method: http.MethodPut, Path: path, Header: ifTok, Body: body})
			expect(t, "PUT of the body with If", p, http.StatusNoContent)
			allPropsOK(t, "PROPPATCH after the PUT", w.send(t, call{Method: "PROPPATCH", Path: path, Header: ifTok,
				Body: win32PropPatch(windowsCreated, windowsModified, "00000020")}))
			expect(t, "UNLOCK", w.send(t, call{Method: "UNLOCK", Path: path, Header: map[string]string{"Lock-Token": "<" + tok + ">"}}), http.StatusNoContent)

			if got, ok := e.getS3(t, key); !ok || !bytes.Equal(got, body) {
				t.Fatalf("S3 holds %d bytes (exists=%v), want the %d bytes copied in", len(got), ok, len(body))
			}
			s3etag, _, _, _ := e.headS3(t, key)
			if et := p.Header.Get("ETag"); et != "" && et != s3etag {
				t.Errorf("PUT answered ETag %q, S3 has %q", et, s3etag)
			}
			// The kept time: Explorer shows Win32LastModifiedTime, and
			// DAV:getlastmodified and Last-Modified show it too (SPEC 3).
			f := onlyResponse(t, "PROPFIND Depth 0 after the copy", w.send(t, call{Method: "PROPFIND", Path: path, Header: map[string]string{"Depth": "0"}, Body: []byte{}}))
			sameHTTPTime(t, "getlastmodified", f.Props["DAV: getlastmodified"].Text, windowsModified)
			g := w.send(t, call{Method: http.MethodHead, Path: path})
			sameHTTPTime(t, "HEAD Last-Modified", g.Header.Get("Last-Modified"), windowsModified)
			list := byPath(t, w.send(t, call{Method: "PROPFIND", Path: strings.TrimSuffix(dir, "/"), Header: map[string]string{"Depth": "1"}, Body: []byte{}}))
			entry, ok := list[dir+"Budget 2024.xlsx"]
			if !ok {
				t.Fatalf("the allprop listing lacks the copied file")
			}
			sameHTTPTime(t, "getlastmodified in the listing", entry.Props["DAV: getlastmodified"].Text, windowsModified)
			for _, prop := range []string{"Win32LastModifiedTime", "Win32CreationTime", "Win32FileAttributes"} {
				if _, ok := entry.Props[msNS+prop]; !ok {
					t.Errorf("the allprop listing lacks the dead property %s (Explorer shows it when present); got %v", prop, keysOf(entry.Props))
				}
			}
			if got := entry.Props[msNS+"Win32LastModifiedTime"].Text; got != "" {
				sameHTTPTime(t, "Win32LastModifiedTime in the listing", got, windowsModified)
			}
			after := w.send(t, call{Method: http.MethodPut, Path: path, Body: []byte("after unlock")})
			expect(t, "PUT after UNLOCK needs no token", after, http.StatusNoContent)
		}},
		{"older Windows unlocks with a token without angle brackets", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"old.txt", []byte("old"), "")
			l := w.send(t, call{Method: "LOCK", Path: dir + "old.txt", Header: map[string]string{"Timeout": "Second-3600"}, Body: []byte(windowsLock)})
			expect(t, "LOCK", l, http.StatusOK)
			tok := strings.Trim(l.Header.Get("Lock-Token"), "<>")
			expect(t, "UNLOCK with a bare token", w.send(t, call{Method: "UNLOCK", Path: dir + "old.txt", Header: map[string]string{"Lock-Token": tok}}), http.StatusNoContent)
			expect(t, "PUT after UNLOCK", w.send(t, call{Method: http.MethodPut, Path: dir + "old.txt", Body: []byte("new")}), http.StatusNoContent)
		}},
		{"PROPPATCH of the modified time on an existing file is kept without a new upload", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			etag := e.putS3(t, keyPrefix+"notes.txt", []byte("notes"), "text/plain")
			mark := e.b.proxy.Mark()
			allPropsOK(t, "PROPPATCH Win32 times", w.send(t, call{Method: "PROPPATCH", Path: dir + "notes.txt",
				Body: win32PropPatch(windowsCreated, windowsModified, "00000020")}))
			for _, c := range e.b.proxy.SinceUnder(mark, keyPrefix+"notes.txt") {
				if op := c.Op(); op == "PutObject" || op == "UploadPart" || op == "GetObject" {
					t.Errorf("the PROPPATCH moved the file's bytes through the gateway: %s", c)
				}
			}
			g := w.send(t, call{Method: http.MethodGet, Path: dir + "notes.txt"})
			expect(t, "GET", g, http.StatusOK)
			sameHTTPTime(t, "GET Last-Modified", g.Header.Get("Last-Modified"), windowsModified)
			if string(g.Body) != "notes" {
				t.Errorf("GET = %q after a PROPPATCH", g.Body)
			}
			if now, _, _, _ := e.headS3(t, keyPrefix+"notes.txt"); now != etag {
				t.Logf("the object's ETag changed from %s to %s: the time is kept in the object itself", etag, now)
			}
		}},
		{"renaming a file sends MOVE with a full-URL Destination and Overwrite F", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"New Text Document.txt", []byte("draft"), "text/plain")
			e.putS3(t, keyPrefix+"taken.txt", []byte("keep me"), "text/plain")
			m := w.send(t, call{Method: "MOVE", Path: dir + "New%20Text%20Document.txt",
				Header: map[string]string{"Destination": w.url(dir + "plan.txt"), "Overwrite": "F"}})
			expect(t, "MOVE onto a free name", m, http.StatusCreated)
			if got, ok := e.getS3(t, keyPrefix+"plan.txt"); !ok || string(got) != "draft" {
				t.Errorf("S3 plan.txt = %q (exists=%v), want draft", got, ok)
			}
			if _, ok := e.getS3(t, keyPrefix+"New Text Document.txt"); ok {
				t.Error("the old name is still in S3 after MOVE")
			}
			c := w.send(t, call{Method: "MOVE", Path: dir + "plan.txt",
				Header: map[string]string{"Destination": w.url(dir + "taken.txt"), "Overwrite": "F"}})
			expect(t, "MOVE onto an existing name with Overwrite F", c, http.StatusPreconditionFailed)
			if got, _ := e.getS3(t, keyPrefix+"taken.txt"); string(got) != "keep me" {
				t.Errorf("a refused MOVE changed taken.txt to %q", got)
			}
			if _, ok := e.getS3(t, keyPrefix+"plan.txt"); !ok {
				t.Error("a refused MOVE removed its source")
			}
		}},
		{"renaming a folder is refused with 403 and nothing changes in S3", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"New folder/", nil, "")
			e.putS3(t, keyPrefix+"New folder/inside.txt", []byte("x"), "")
			before := e.b.snapshot(t, keyPrefix)
			m := w.send(t, call{Method: "MOVE", Path: dir + "New%20folder",
				Header: map[string]string{"Destination": w.url(dir + "Projects"), "Overwrite": "F"}})
			expect(t, "MOVE of a folder", m, http.StatusForbidden)
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("a refused folder MOVE changed S3: %s", d)
			}
		}},
		{"a new folder is MKCOL then a PROPPATCH of its attributes", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			expect(t, "MKCOL", w.send(t, call{Method: "MKCOL", Path: dir + "New%20folder"}), http.StatusCreated)
			allPropsOK(t, "PROPPATCH of the folder's attributes", w.send(t, call{Method: "PROPPATCH", Path: dir + "New%20folder",
				Body: win32Attributes("00000010")}))
			if _, _, _, ok := e.headS3(t, keyPrefix+"New folder/"); !ok {
				t.Error("MKCOL stored no folder marker")
			}
		}},
		{"Office saves to a temporary file, MOVEs it onto the real name and hides its owner file", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"Letter.docx", []byte("version 1"), "")
			expect(t, "PUT owner file", w.send(t, call{Method: http.MethodPut, Path: dir + "~$Letter.docx", Body: []byte("alice")}), http.StatusCreated)
			allPropsOK(t, "PROPPATCH hidden attributes", w.send(t, call{Method: "PROPPATCH", Path: dir + "~$Letter.docx", Body: win32Attributes("00002002")}))
			expect(t, "PUT temporary file", w.send(t, call{Method: http.MethodPut, Path: dir + "~WRL0001.tmp", Body: []byte("version 2")}), http.StatusCreated)
			m := w.send(t, call{Method: "MOVE", Path: dir + "~WRL0001.tmp", Header: map[string]string{"Destination": w.url(dir + "Letter.docx"), "Overwrite": "T"}})
			expect(t, "MOVE onto the real name", m, http.StatusNoContent)
			expect(t, "DELETE owner file", w.send(t, call{Method: http.MethodDelete, Path: dir + "~$Letter.docx"}), http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"Letter.docx"); string(got) != "version 2" {
				t.Errorf("Letter.docx holds %q, want version 2", got)
			}
			if keys := userKeys(t, e, keyPrefix); len(keys) != 2 {
				t.Errorf("S3 holds %v, want only the folder marker and Letter.docx", keys)
			}
		}},
		{"deleting a file and a folder sends DELETE without a trailing slash", func(t *testing.T, e *davEnv, w *clientApp) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"old.log", []byte("log"), "")
			e.putS3(t, keyPrefix+"Archive/", nil, "")
			e.putS3(t, keyPrefix+"Archive/2019.zip", []byte("zip"), "")
			expect(t, "DELETE file", w.send(t, call{Method: http.MethodDelete, Path: dir + "old.log"}), http.StatusNoContent)
			expect(t, "DELETE folder without a slash", w.send(t, call{Method: http.MethodDelete, Path: dir + "Archive"}), http.StatusNoContent)
			if keys := userKeys(t, e, keyPrefix); len(keys) != 1 {
				t.Errorf("S3 still holds %v", keys)
			}
			expect(t, "DELETE again", w.send(t, call{Method: http.MethodDelete, Path: dir + "old.log"}), http.StatusNotFound)
		}},
	}
}

// newTLSClientAppSharing is another client program on the same HTTPS gateway.
func newTLSClientAppSharing(c *clientApp, header map[string]string) *clientApp {
	return &clientApp{name: c.name, base: c.base, http: c.http, header: header}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
