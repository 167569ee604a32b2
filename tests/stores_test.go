package tests

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
)

// storeUsers is a static authenticator of users by name with their root
// templates ("" = users/{username}/); each one's password is "pw-" + name.
func storeUsers(tb testing.TB, roots map[string]string) *auth.Static {
	tb.Helper()
	var users []auth.StaticUser
	for name, root := range roots {
		h, err := auth.HashPasswordCost("pw-"+name, bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		users = append(users, auth.StaticUser{Name: name, PasswordHash: h, Root: root})
	}
	a, err := auth.NewStatic(users, "users/{username}/")
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// newStore builds a Store of cfg or fails the test.
func newStore(tb testing.TB, cfg s3vfs.Config) *s3vfs.Store {
	tb.Helper()
	st, err := s3vfs.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// gatewayStores serves the real gateway over the default store def
// (prefix defPrefix) and the named stores, stopped at the end of the test.
func gatewayStores(tb testing.TB, a auth.Authenticator, def *s3vfs.Store, defPrefix string, stores map[string]gateway.NamedStore) *davEnv {
	tb.Helper()
	gw, err := gateway.New(gateway.Options{
		Store:     def,
		Prefix:    defPrefix,
		Stores:    stores,
		DAVPrefix: "/dav/",
		Auth:      a,
		Realm:     "davgw-test",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	tb.Cleanup(srv.Close)
	return &davEnv{srv: srv, URL: srv.URL, store: def, gw: gw}
}

// as sends a request as user (password "pw-" + user).
func (e *davEnv) as(tb testing.TB, user, method, path string, header map[string]string, body []byte) reply {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return e.do(tb, req{Method: method, Path: path, User: user, Pass: "pw-" + user, Header: header, Body: rd})
}

// objectIn reads bucket/key straight from b's server: ok = false when it
// is absent.
func objectIn(tb testing.TB, b *backend, bucket, key string) ([]byte, bool) {
	tb.Helper()
	out, err := b.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if missingS3(err) {
			return nil, false
		}
		tb.Fatalf("GetObject %s/%s on %s: %v", bucket, key, b.name, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return data, true
}

// TestStoresKeepEachUsersFilesInItsOwnStore runs one gateway over two S3
// servers at once: the default store on versitygw, the store "weed" on
// SeaweedFS. Each user's requests reach only its store's server (the
// proxies count them), its files land only there (read back from S3
// directly), and a Destination always names the user's own store.
func TestStoresKeepEachUsersFilesInItsOwnStore(t *testing.T) {
	vg, sw := getBackend(t, "versitygw"), getBackend(t, "seaweedfs")
	suffix := randHex(4)
	sam, wes := "sam-"+suffix, "wes-"+suffix
	a := storeUsers(t, map[string]string{sam: "", wes: "weed:people/{username}/"})
	def := newStore(t, storeConfig(vg, vg.proxy.URL, gatewayPartSize, 2))
	weed := newStore(t, storeConfig(sw, sw.proxy.URL, gatewayPartSize, 2))
	e := gatewayStores(t, a, def, "", map[string]gateway.NamedStore{"weed": {Store: weed}})
	samKey, wesKey := "users/"+sam+"/", "people/"+wes+"/"
	t.Cleanup(func() {
		for _, k := range []string{"a.txt", "b.txt"} {
			vg.deleteS3(t, samKey+k)
			sw.deleteS3(t, wesKey+k)
		}
	})

	vgMark, swMark := vg.proxy.Mark(), sw.proxy.Mark()
	expect(t, "sam's PUT", e.as(t, sam, "PUT", "/dav/a.txt", nil, []byte("sam's file")), http.StatusCreated)
	if n := len(sw.proxy.Since(swMark)); n != 0 {
		t.Errorf("sam's PUT made %d calls to SeaweedFS, want 0", n)
	}
	if n := len(vg.proxy.Since(vgMark)); n == 0 {
		t.Error("sam's PUT made no call to versitygw")
	}

	vgMark, swMark = vg.proxy.Mark(), sw.proxy.Mark()
	expect(t, "wes's PUT", e.as(t, wes, "PUT", "/dav/a.txt", nil, []byte("wes's file")), http.StatusCreated)
	expect(t, "wes's COPY", e.as(t, wes, "COPY", "/dav/a.txt", map[string]string{"Destination": "/dav/b.txt"}, nil), http.StatusCreated)
	r := e.as(t, wes, "PROPFIND", "/dav/", map[string]string{"Depth": "1"}, nil)
	expect(t, "wes's PROPFIND", r, http.StatusMultiStatus)
	if !bytes.Contains(r.Body, []byte("<D:href>/dav/a.txt</D:href>")) || !bytes.Contains(r.Body, []byte("<D:href>/dav/b.txt</D:href>")) {
		t.Errorf("wes's listing lacks a.txt or b.txt: %s", r)
	}
	if n := len(vg.proxy.Since(vgMark)); n != 0 {
		t.Errorf("wes's requests made %d calls to versitygw, want 0", n)
	}
	if n := len(sw.proxy.Since(swMark)); n == 0 {
		t.Error("wes's requests made no call to SeaweedFS")
	}
	// A Destination on another server is refused as ever (502).
	expect(t, "wes's MOVE elsewhere", e.as(t, wes, "MOVE", "/dav/b.txt", map[string]string{"Destination": "http://elsewhere.example/dav/b.txt"}, nil), http.StatusBadGateway)

	for _, c := range []struct {
		b     *backend
		key   string
		want  string // "" = absent
		where string
	}{
		{vg, samKey + "a.txt", "sam's file", "versitygw"},
		{sw, samKey + "a.txt", "", "SeaweedFS"},
		{sw, wesKey + "a.txt", "wes's file", "SeaweedFS"},
		{sw, wesKey + "b.txt", "wes's file", "SeaweedFS"},
		{vg, wesKey + "a.txt", "", "versitygw"},
		{vg, "users/" + wes + "/a.txt", "", "versitygw"},
		{vg, wesKey + "b.txt", "", "versitygw"},
	} {
		got, ok := objectIn(t, c.b, c.b.bucket, c.key)
		switch {
		case c.want == "" && ok:
			t.Errorf("%s holds %s, which belongs to the other store", c.where, c.key)
		case c.want != "" && (!ok || string(got) != c.want):
			t.Errorf("%s: %s = %q (present %v), want %q", c.where, c.key, got, ok, c.want)
		}
	}
	// The same name in each store is each user's own.
	r = e.as(t, sam, "GET", "/dav/a.txt", nil, nil)
	expect(t, "sam's GET", r, http.StatusOK)
	if string(r.Body) != "sam's file" {
		t.Errorf("sam reads %q", r.Body)
	}
	report(t, "stores: sam's requests reached only versitygw, wes's only SeaweedFS; 7 keys checked on S3")
}

// everyBucketStore makes buckets on vg (removed with what the test wrote
// in them) and returns a store with bucket = "*" over a counting proxy of
// its own, marked as such for the least-privilege check.
func everyBucketStore(t *testing.T, vg *backend, buckets ...string) (*s3vfs.Store, *countingProxy) {
	t.Helper()
	ctx := context.Background()
	for _, b := range buckets {
		if err := createBucket(ctx, vg.s3, b); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, b := range buckets {
			pages := s3.NewListObjectsV2Paginator(vg.s3, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
			for pages.HasMorePages() {
				page, err := pages.NextPage(ctx)
				if err != nil {
					break
				}
				for _, o := range page.Contents {
					_, _ = vg.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: o.Key})
				}
			}
			_, _ = vg.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)})
		}
	})
	p, err := newCountingProxy(vg.server.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.everyBucket = true
	t.Cleanup(p.Close)
	cfg := storeConfig(vg, p.URL, gatewayPartSize, 2)
	cfg.Bucket = s3vfs.AnyBucket
	return newStore(t, cfg), p
}

// TestABucketRootListsBucketsAndRefusesTopLevelWrites: a store with bucket
// = "*" on versitygw shows the buckets as top-level folders (one
// ListBuckets for two listings), refuses every write at its top level with
// 403 and a reason, works inside a bucket, and refuses a COPY or MOVE to
// another bucket with 502 without touching it.
func TestABucketRootListsBucketsAndRefusesTopLevelWrites(t *testing.T) {
	vg := getBackend(t, "versitygw")
	suffix := randHex(4)
	bucketA, bucketB := "davgw-all-"+suffix+"-a", "davgw-all-"+suffix+"-b"
	all, p := everyBucketStore(t, vg, bucketA, bucketB)
	admin := "admin-" + suffix
	a := storeUsers(t, map[string]string{admin: "all:"})
	def := newStore(t, storeConfig(vg, vg.proxy.URL, gatewayPartSize, 2))
	e := gatewayStores(t, a, def, "", map[string]gateway.NamedStore{"all": {Store: all}})

	listBuckets := func(calls []s3Call) int {
		n := 0
		for _, c := range calls {
			if c.Method == http.MethodGet && c.Bucket == "" {
				n++
			}
		}
		return n
	}
	mark := p.Mark()
	for i := range 2 {
		r := e.as(t, admin, "PROPFIND", "/dav/", map[string]string{"Depth": "1"}, nil)
		expect(t, "PROPFIND of the bucket root", r, http.StatusMultiStatus)
		for _, b := range []string{bucketA, bucketB} {
			if !bytes.Contains(r.Body, []byte("<D:href>/dav/"+b+"/</D:href>")) {
				t.Fatalf("listing %d lacks bucket %s: %s", i, b, r)
			}
		}
		if bytes.Count(r.Body, []byte("<D:collection")) < 3 {
			t.Fatalf("buckets are not folders: %s", r)
		}
	}
	listed := listBuckets(p.Since(mark))
	if listed != 1 {
		t.Errorf("two listings made %d ListBuckets calls, want 1 (kept 30 s)", listed)
	}
	expect(t, "PROPFIND Depth infinity of the bucket root", e.as(t, admin, "PROPFIND", "/dav/", map[string]string{"Depth": "infinity"}, nil), http.StatusForbidden)

	mark = p.Mark()
	for _, w := range []struct{ method, path, dst string }{
		{"MKCOL", "/dav/davgw-new-" + suffix + "/", ""},
		{"PUT", "/dav/top.txt", ""},
		{"DELETE", "/dav/" + bucketA + "/", ""},
		{"MOVE", "/dav/" + bucketA + "/", "/dav/davgw-renamed-" + suffix + "/"},
		{"COPY", "/dav/" + bucketA + "/", "/dav/davgw-copy-" + suffix + "/"},
		{"PROPPATCH", "/dav/" + bucketA + "/", ""},
		{"LOCK", "/dav/" + bucketA, ""},
		{"LOCK", "/dav/", ""},
	} {
		h := map[string]string{}
		if w.dst != "" {
			h["Destination"] = w.dst
		}
		r := e.as(t, admin, w.method, w.path, h, nil)
		expect(t, w.method+" "+w.path+" at the top level", r, http.StatusForbidden)
		if !strings.Contains(string(r.Body), "top level lists the buckets") {
			t.Errorf("%s %s: the 403 does not say why: %s", w.method, w.path, r)
		}
	}
	if calls := p.Since(mark); len(calls) > 1 || listBuckets(calls) != len(calls) {
		t.Errorf("the refused writes made S3 calls other than one ListBuckets: %v", calls)
	}

	// Inside a bucket everything works as in any store.
	expect(t, "PUT in bucket A", e.as(t, admin, "PUT", "/dav/"+bucketA+"/f.txt", nil, []byte("in A")), http.StatusCreated)
	if got, ok := objectIn(t, vg, bucketA, "f.txt"); !ok || string(got) != "in A" {
		t.Fatalf("bucket A's f.txt = %q (present %v)", got, ok)
	}
	expect(t, "MKCOL in bucket A", e.as(t, admin, "MKCOL", "/dav/"+bucketA+"/folder/", nil, nil), http.StatusCreated)
	r := e.as(t, admin, "PROPFIND", "/dav/"+bucketA+"/", map[string]string{"Depth": "1"}, nil)
	expect(t, "PROPFIND of bucket A", r, http.StatusMultiStatus)
	for _, h := range []string{"/dav/" + bucketA + "/", "/dav/" + bucketA + "/f.txt", "/dav/" + bucketA + "/folder/"} {
		if !bytes.Contains(r.Body, []byte("<D:href>"+h+"</D:href>")) {
			t.Errorf("bucket A's listing lacks %s: %s", h, r)
		}
	}
	expect(t, "MOVE within bucket A", e.as(t, admin, "MOVE", "/dav/"+bucketA+"/f.txt", map[string]string{"Destination": "/dav/" + bucketA + "/g.txt"}, nil), http.StatusCreated)
	r = e.as(t, admin, "GET", "/dav/"+bucketA+"/g.txt", nil, nil)
	expect(t, "GET in bucket A", r, http.StatusOK)
	if string(r.Body) != "in A" {
		t.Errorf("GET reads %q", r.Body)
	}

	// Between buckets: 502, nothing written.
	for _, m := range []string{"COPY", "MOVE"} {
		r := e.as(t, admin, m, "/dav/"+bucketA+"/g.txt", map[string]string{"Destination": "/dav/" + bucketB + "/g.txt"}, nil)
		expect(t, m+" to another bucket", r, http.StatusBadGateway)
		if !strings.Contains(string(r.Body), "another bucket") {
			t.Errorf("%s to another bucket: the 502 does not say why: %s", m, r)
		}
	}
	expect(t, "COPY to the top level", e.as(t, admin, "COPY", "/dav/"+bucketA+"/g.txt", map[string]string{"Destination": "/dav/g.txt"}, nil), http.StatusForbidden)
	if _, ok := objectIn(t, vg, bucketB, "g.txt"); ok {
		t.Error("the refused COPY/MOVE wrote into bucket B")
	}
	if _, ok := objectIn(t, vg, bucketA, "g.txt"); !ok {
		t.Error("the refused MOVE removed the source")
	}
	expect(t, "PROPFIND of a bucket the store does not list", e.as(t, admin, "PROPFIND", "/dav/davgw-nosuch-"+suffix+"/", map[string]string{"Depth": "0"}, nil), http.StatusNotFound)
	report(t, "bucket root: 2 listings, %d ListBuckets call(s); top-level writes refused 403; cross-bucket COPY/MOVE 502", listed)
}

// stsRecorder sits in front of SeaweedFS's STS and records the ExternalId
// of every AssumeRole call.
type stsRecorder struct {
	mu          sync.Mutex
	externalIDs []string
}

func (s *stsRecorder) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.externalIDs...)
}

func newSTSRecorder(tb testing.TB, target string) (*stsRecorder, string) {
	tb.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	rec := &stsRecorder{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(tu)
		pr.Out.Host = pr.In.Host // the signature covers Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") == "AssumeRole" {
			rec.mu.Lock()
			rec.externalIDs = append(rec.externalIDs, form.Get("ExternalId"))
			rec.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return rec, srv.URL
}

// TestEachStoreAssumesItsOwnRole: two stores on SeaweedFS's STS, each
// assuming the role with its own external ID; each user's round trip
// works through its store's session, and every AssumeRole names the
// external ID of the store that made it.
func TestEachStoreAssumesItsOwnRole(t *testing.T) {
	srv := getSTSServer(t)
	rec, stsURL := newSTSRecorder(t, srv.endpoint)
	storeWith := func(externalID string) *s3vfs.Store {
		cfg := stsConfig(srv, externalID)
		cfg.RoleSessionName, cfg.STSEndpoint = "davgw-"+externalID, stsURL
		return newStore(t, cfg)
	}
	suffix := randHex(4)
	first, second := "first-"+suffix, "second-"+suffix
	a := storeUsers(t, map[string]string{first: "", second: "second:other/{username}/"})
	e := gatewayStores(t, a, storeWith("ext-first"), stsPrefix,
		map[string]gateway.NamedStore{"second": {Store: storeWith("ext-second"), Prefix: stsPrefix}})

	admin := newS3Client(srv.endpoint, stsAdminKey, stsAdminSecret, &http.Client{Transport: &http.Transport{Proxy: nil}})
	for _, u := range []struct{ name, key string }{
		{first, stsPrefix + "users/" + first + "/f.txt"},
		{second, stsPrefix + "other/" + second + "/f.txt"},
	} {
		expect(t, u.name+"'s PUT", e.as(t, u.name, "PUT", "/dav/f.txt", nil, []byte(u.name)), http.StatusCreated)
		r := e.as(t, u.name, "GET", "/dav/f.txt", nil, nil)
		expect(t, u.name+"'s GET", r, http.StatusOK)
		if string(r.Body) != u.name {
			t.Errorf("%s reads %q", u.name, r.Body)
		}
		out, err := admin.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(stsBucket), Key: aws.String(u.key)})
		if err != nil || aws.ToInt64(out.ContentLength) != int64(len(u.name)) {
			t.Errorf("%s's file is not at %s: %v", u.name, u.key, err)
		}
		_, _ = admin.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: aws.String(stsBucket),
			Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String(u.key)}}}})
	}
	ids := rec.seen()
	counts := map[string]int{}
	for _, id := range ids {
		counts[id]++
	}
	if counts["ext-first"] == 0 || counts["ext-second"] == 0 || len(counts) != 2 {
		t.Fatalf("AssumeRole calls by external ID: %v, want both stores' and no other", counts)
	}
	report(t, "AssumeRole per store: %d calls, external IDs %v", len(ids), counts)
}

// TestABucketRootIsReadOnlyByARule: OIDC users of a group whose rule makes
// them read-only see the buckets and read inside them, and every write is
// 403; another group's rule on the same store writes.
func TestABucketRootIsReadOnlyByARule(t *testing.T) {
	vg := getBackend(t, "versitygw")
	bucket := "davgw-ro-" + randHex(4)
	all, _ := everyBucketStore(t, vg, bucket)
	m := startMockIdP(t)
	e := newSignInEnv(t, vg, signInOptions{issuer: m.Issuer(), clientID: m.ClientID, clientSecret: m.ClientSecret,
		rules: []auth.Rule{
			{Group: "auditors", Root: "all:audit/", ReadOnly: true},
			{Group: "admins", Root: "all:audit/"},
		},
		stores: map[string]gateway.NamedStore{"all": {Store: all}}})
	admin := bearerOf(mockToken(t, m, "ada", map[string]any{"groups": []string{"admins"}}))
	auditor := bearerOf(mockToken(t, m, "aud", map[string]any{"groups": []string{"auditors"}}))

	expect(t, "the admin's PUT", e.call(t, "PUT", "/dav/"+bucket+"/report.txt", admin, nil, "figures"), http.StatusCreated)
	if got, ok := objectIn(t, vg, bucket, "audit/report.txt"); !ok || string(got) != "figures" {
		t.Fatalf("audit/report.txt in %s = %q (present %v)", bucket, got, ok)
	}
	r := e.call(t, "PROPFIND", "/dav/", auditor, map[string]string{"Depth": "1"}, "")
	expect(t, "the auditor's PROPFIND of the bucket root", r, http.StatusMultiStatus)
	if !bytes.Contains(r.Body, []byte("<D:href>/dav/"+bucket+"/</D:href>")) {
		t.Errorf("the auditor does not see %s: %s", bucket, r)
	}
	r = e.call(t, "GET", "/dav/"+bucket+"/report.txt", auditor, nil, "")
	expect(t, "the auditor's GET", r, http.StatusOK)
	if string(r.Body) != "figures" {
		t.Errorf("the auditor reads %q", r.Body)
	}
	for _, w := range []struct{ method, path string }{
		{"PUT", "/dav/" + bucket + "/new.txt"},
		{"DELETE", "/dav/" + bucket + "/report.txt"},
		{"MKCOL", "/dav/" + bucket + "/folder/"},
		{"MKCOL", "/dav/davgw-new-bucket/"},
	} {
		expect(t, "the auditor's "+w.method+" "+w.path, e.call(t, w.method, w.path, auditor, nil, ""), http.StatusForbidden)
	}
	if _, ok := objectIn(t, vg, bucket, "audit/new.txt"); ok {
		t.Error("the read-only PUT wrote")
	}
	if _, ok := objectIn(t, vg, bucket, "audit/report.txt"); !ok {
		t.Error("the read-only DELETE deleted")
	}
}

// TestTheJanitorOfABucketRootSweepsEveryBucket: the janitor of a store
// with bucket = "*" aborts the abandoned multipart uploads under its
// prefix in each bucket it lists, and nothing outside the prefix.
func TestTheJanitorOfABucketRootSweepsEveryBucket(t *testing.T) {
	vg := getBackend(t, "versitygw")
	suffix := randHex(4)
	buckets := []string{"davgw-jan-" + suffix + "-a", "davgw-jan-" + suffix + "-b"}
	all, _ := everyBucketStore(t, vg, buckets...)
	ctx := context.Background()
	open := func(bucket, key string) {
		if _, err := vg.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	uploads := func(bucket, prefix string) int {
		out, err := vg.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	for _, b := range buckets {
		open(b, "gw/abandoned.bin")
		open(b, "other/kept.bin")
	}
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Two days from now every upload is abandoned.
		all.RunJanitor(jctx, s3vfs.JanitorOptions{Prefix: "gw/", MaxAge: time.Hour, Now: func() time.Time { return time.Now().Add(48 * time.Hour) }})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for uploads(buckets[0], "gw/")+uploads(buckets[1], "gw/") > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	for _, b := range buckets {
		if n := uploads(b, "gw/"); n != 0 {
			t.Errorf("%s: %d abandoned uploads under gw/ left", b, n)
		}
		if n := uploads(b, "other/"); n != 1 {
			t.Errorf("%s: %d uploads outside the prefix, want the 1 left alone", b, n)
		}
		out, err := vg.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(b)})
		if err == nil {
			for _, u := range out.Uploads {
				_, _ = vg.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(b), Key: u.Key, UploadId: u.UploadId})
			}
		}
	}
}
