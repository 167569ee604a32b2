package tests

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
)

// The gateway-wide folder cache (davfs.DirCache) must never make the
// gateway act on stale knowledge of its own operations. Each case below
// once overwrote, resurrected or misreported something (found in review).

// A listing under way while this gateway PUTs a file must not be stored
// afterwards as "the name is free": a COPY with Overwrite: F then
// overwrote the new file.
func TestAListingOvertakenByAPutDoesNotFreeTheName(t *testing.T) {
	b := getBackend(t, "versitygw")
	up, err := url.Parse(b.proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	var hold sync.Map // key prefixes whose delimiter listings are held back
	rp := httputil.NewSingleHostReverseProxy(up)
	rp.ModifyResponse = func(resp *http.Response) error {
		q := resp.Request.URL.Query()
		if q.Get("list-type") == "2" && q.Get("delimiter") == "/" {
			if _, ok := hold.Load(q.Get("prefix")); ok {
				time.Sleep(800 * time.Millisecond)
			}
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e, err := newDavEnv(staticAuth(t), b, "http://"+ln.Addr().String(), gatewayPartSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Close)
	keyPrefix, dir := e.caseDir(t)
	expect(t, "PUT src", e.alice(t, http.MethodPut, dir+"src.txt", nil, []byte("copy source")), http.StatusCreated)
	hold.Store(keyPrefix, true)
	done := make(chan reply, 1)
	go func() {
		done <- e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing))
	}()
	time.Sleep(300 * time.Millisecond)
	expect(t, "PUT precious during the listing", e.alice(t, http.MethodPut, dir+"precious.txt", nil, []byte("precious data")), http.StatusCreated)
	expect(t, "the held-back PROPFIND", <-done, http.StatusMultiStatus)
	hold.Delete(keyPrefix)
	r := e.alice(t, "COPY", dir+"src.txt", e.dest(dir+"precious.txt", "F"), nil)
	expect(t, "COPY with Overwrite: F onto the file PUT during the listing", r, http.StatusPreconditionFailed)
	if got, _ := e.getS3(t, keyPrefix+"precious.txt"); string(got) != "precious data" {
		t.Fatalf("precious.txt holds %q", got)
	}
}

// Names a listing leaves out (apple_files = hide) are not free.
func TestHiddenNamesAreNotFreeAfterAListing(t *testing.T) {
	e := tunedEnv(t, "versitygw", func(o *gateway.Options) { o.AppleFiles = gateway.AppleHide })
	keyPrefix, dir := e.caseDir(t)
	expect(t, "PUT ._a", e.alice(t, http.MethodPut, dir+"._a", nil, []byte("resource fork")), http.StatusCreated)
	expect(t, "PUT ._c", e.alice(t, http.MethodPut, dir+"._c", nil, []byte("c")), http.StatusCreated)
	expect(t, "PUT b", e.alice(t, http.MethodPut, dir+"b", nil, []byte("other")), http.StatusCreated)
	expect(t, "PROPFIND", e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing)), http.StatusMultiStatus)
	expect(t, "COPY b onto ._a with Overwrite: F", e.alice(t, "COPY", dir+"b", e.dest(dir+"._a", "F"), nil), http.StatusPreconditionFailed)
	if got, _ := e.getS3(t, keyPrefix+"._a"); string(got) != "resource fork" {
		t.Fatalf("._a holds %q", got)
	}
	expect(t, "PUT over ._c", e.alice(t, http.MethodPut, dir+"._c", nil, []byte("c2")), http.StatusNoContent)
	expect(t, "DELETE ._c", e.alice(t, http.MethodDelete, dir+"._c", nil, nil), http.StatusNoContent)
	if _, ok := e.getS3(t, keyPrefix+"._c"); ok {
		t.Fatal("._c is still stored after its DELETE")
	}
}

// A tree COPY writes the destination's index; a DELETE right after must
// drop the copied entry, or a later upload of the same bytes inherits the
// deleted file's dead properties.
func TestADeleteAfterATreeCopyDropsTheCopiedEntry(t *testing.T) {
	e := getEnv(t, "versitygw")
	keyPrefix, dir := e.caseDir(t)
	expect(t, "MKCOL a", e.alice(t, "MKCOL", dir+"a/", nil, nil), http.StatusCreated)
	expect(t, "PUT a/f", e.alice(t, http.MethodPut, dir+"a/f.txt", map[string]string{"X-OC-Mtime": "1000000000"}, []byte("same bytes")), http.StatusCreated)
	expect(t, "PROPPATCH a/f", e.alice(t, "PROPPATCH", dir+"a/f.txt", nil, []byte(deadPropPatch)), http.StatusMultiStatus)
	expect(t, "MKCOL b", e.alice(t, "MKCOL", dir+"b/", nil, nil), http.StatusCreated)
	expect(t, "PROPFIND b", e.alice(t, "PROPFIND", dir+"b/", map[string]string{"Depth": "1"}, []byte(propfindListing)), http.StatusMultiStatus)
	expect(t, "COPY a onto b", e.alice(t, "COPY", dir+"a/", e.dest(dir+"b/", "T"), nil), http.StatusNoContent)
	if idx, _ := e.getS3(t, keyPrefix+"b/.davgw-index.json"); !bytes.Contains(idx, []byte(`"f.txt"`)) {
		t.Fatalf("the COPY did not carry f.txt's entry: %s", idx)
	}
	expect(t, "DELETE b/f", e.alice(t, http.MethodDelete, dir+"b/f.txt", nil, nil), http.StatusNoContent)
	if idx, _ := e.getS3(t, keyPrefix+"b/.davgw-index.json"); bytes.Contains(idx, []byte(`"f.txt"`)) {
		t.Fatalf("the deleted file's entry stayed in the index: %s", idx)
	}
}

// A URL ending in "/" asks S3 for the folder, never the cache; and a folder
// S3 dropped with its last key (deleted through the gateway) is not known
// to exist, up to the top.
func TestFoldersAreNotAnsweredFromTheCache(t *testing.T) {
	e := getEnv(t, "versitygw")
	keyPrefix, dir := e.caseDir(t)
	expect(t, "PROPFIND", e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing)), http.StatusMultiStatus)
	e.putS3(t, keyPrefix+"new/", nil, "")
	expect(t, "GET of a folder made in S3 after the listing, with its slash", e.alice(t, http.MethodGet, dir+"new/", nil, nil), http.StatusMethodNotAllowed)

	e.putS3(t, keyPrefix+"a/b/c.txt", []byte("c"), "")
	expect(t, "PROPFIND a", e.alice(t, "PROPFIND", dir+"a/", map[string]string{"Depth": "1"}, []byte(propfindListing)), http.StatusMultiStatus)
	expect(t, "PROPFIND a/b", e.alice(t, "PROPFIND", dir+"a/b/", map[string]string{"Depth": "1"}, []byte(propfindListing)), http.StatusMultiStatus)
	expect(t, "DELETE a/b/c.txt", e.alice(t, http.MethodDelete, dir+"a/b/c.txt", nil, nil), http.StatusNoContent)
	if keys := e.b.keys(t, keyPrefix+"a/"); len(keys) != 0 {
		t.Fatalf("keys left under a/: %v", keys)
	}
	r := e.alice(t, http.MethodPut, dir+"a/x.txt", nil, []byte("x"))
	expect(t, "PUT into a/, which S3 dropped with its last key", r, http.StatusConflict)
	if keys := e.b.keys(t, keyPrefix+"a/"); len(keys) != 0 {
		t.Fatalf("the PUT recreated a/: %v", strings.Join(keys, ", "))
	}
}
