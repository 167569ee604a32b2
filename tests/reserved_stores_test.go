package tests

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/davgw/davgw/gateway"
)

// bucketKeys returns every key of bucket on b with its ETag.
func bucketKeys(t *testing.T, b *backend, bucket string) map[string]string {
	t.Helper()
	out := map[string]string{}
	pages := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToString(o.ETag)
		}
	}
	return out
}

// writes returns the calls among calls that change something on S3.
func writes(calls []s3Call) []s3Call {
	var out []s3Call
	for _, c := range calls {
		if c.Method == http.MethodPut || c.Method == http.MethodPost || c.Method == http.MethodDelete {
			out = append(out, c)
		}
	}
	return out
}

// TestNoStoreReachesTheDefaultStoresReservedArea attacks the default
// store's reserved area (<prefix>.davgw/: app passwords, identities) on
// versitygw through the stores that share its bucket: a store with bucket
// = "*", where it is /dav/<bucket>/data/.davgw/; a named store over the
// same bucket at another endpoint whose prefix "" is a parent of the
// default prefix "data/", where it is /dav/data/.davgw/; and a user of
// that store whose root lies inside the area. Names inside it are 404 as
// any reserved name; a destination inside it 403; DELETE, COPY and MOVE
// of the folder that holds it, or onto it, 403 as for a root. No write
// reaches S3 and every key of the bucket keeps its ETag.
func TestNoStoreReachesTheDefaultStoresReservedArea(t *testing.T) {
	vg := getBackend(t, "versitygw")
	suffix := randHex(4)
	bucket := "davgw-res-" + suffix
	all, allProxy := everyBucketStore(t, vg, bucket)
	defCfg := storeConfig(vg, vg.proxy.URL, gatewayPartSize, 2)
	defCfg.Bucket = bucket
	def := newStore(t, defCfg)
	upProxy, err := newCountingProxy(vg.server.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(upProxy.Close)
	upCfg := storeConfig(vg, upProxy.URL, gatewayPartSize, 2)
	upCfg.Bucket = bucket
	up := newStore(t, upCfg)

	ctx := context.Background()
	for k, v := range map[string]string{
		"data/.davgw/app-passwords/alice/k1.json": `{"hash":"secret"}`,
		"data/.davgw/identities/bob.json":         `{"sub":"bob"}`,
		"data/f.txt":                              "a file beside it",
		"other/h.txt":                             "a file elsewhere",
	} {
		if _, err := vg.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader([]byte(v))}); err != nil {
			t.Fatal(err)
		}
	}
	star, parent, inside := "star-"+suffix, "parent-"+suffix, "inside-"+suffix
	a := storeUsers(t, map[string]string{star: "all:", parent: "up:", inside: "up:data/.davgw/"})
	e := gatewayStores(t, a, def, "data/", map[string]gateway.NamedStore{"all": {Store: all}, "up": {Store: up}})

	before := bucketKeys(t, vg, bucket)
	allMark, upMark := allProxy.Mark(), upProxy.Mark()
	type attack struct {
		method, path, dst string
		want              int
	}
	attacks := func(base, other string) []attack {
		return []attack{
			{"PROPFIND", base + "/.davgw/", "", http.StatusNotFound},
			{"PROPFIND", base + "/.davgw/app-passwords/alice/", "", http.StatusNotFound},
			{"GET", base + "/.davgw/app-passwords/alice/k1.json", "", http.StatusNotFound},
			{"PUT", base + "/.davgw/app-passwords/alice/k2.json", "", http.StatusNotFound},
			{"MKCOL", base + "/.davgw/app-passwords/mallory/", "", http.StatusNotFound},
			{"DELETE", base + "/.davgw/identities/bob.json", "", http.StatusNotFound},
			{"DELETE", base + "/.davgw/", "", http.StatusNotFound},
			{"COPY", base + "/.davgw/identities/bob.json", base + "/stolen.json", http.StatusNotFound},
			{"MOVE", base + "/.davgw/identities/bob.json", base + "/stolen.json", http.StatusNotFound},
			{"COPY", base + "/.davgw/", other + "/stolen/", http.StatusNotFound},
			{"COPY", base + "/f.txt", base + "/.davgw/app-passwords/alice/k1.json", http.StatusForbidden},
			{"MOVE", base + "/f.txt", base + "/.davgw/identities/bob.json", http.StatusForbidden},
			// The folder that holds it, as the default store's root.
			{"DELETE", base + "/", "", http.StatusForbidden},
			{"COPY", base + "/", other + "/copy/", http.StatusForbidden},
			{"MOVE", base + "/", other + "/moved/", http.StatusForbidden},
			{"COPY", other + "/", base + "/", http.StatusForbidden},
			{"COPY", other + "/h.txt", base, http.StatusForbidden},
		}
	}
	n := 0
	run := func(user string, as []attack) {
		n += len(as)
		for _, c := range as {
			h := map[string]string{"Depth": "1"}
			if c.dst != "" {
				h = map[string]string{"Destination": c.dst, "Overwrite": "T"}
			}
			var body []byte
			if c.method == "PUT" {
				body = []byte(`{"hash":"mallory's"}`)
			}
			expect(t, user+": "+c.method+" "+c.path+" -> "+c.dst, e.as(t, user, c.method, c.path, h, body), c.want)
		}
	}
	run(star, attacks("/dav/"+bucket+"/data", "/dav/"+bucket+"/other"))
	run(parent, attacks("/dav/data", "/dav/other"))
	run(inside, []attack{
		{"PROPFIND", "/dav/", "", http.StatusNotFound},
		{"GET", "/dav/app-passwords/alice/k1.json", "", http.StatusNotFound},
		{"PUT", "/dav/app-passwords/alice/k2.json", "", http.StatusNotFound},
		{"DELETE", "/dav/identities/bob.json", "", http.StatusNotFound},
		{"DELETE", "/dav/identities/", "", http.StatusNotFound},
		{"MOVE", "/dav/identities/bob.json", "/dav/x.json", http.StatusNotFound},
	})

	// The listings of the folder that holds it leave it out.
	for _, l := range []struct{ user, path string }{{star, "/dav/" + bucket + "/data/"}, {parent, "/dav/data/"}} {
		r := e.as(t, l.user, "PROPFIND", l.path, map[string]string{"Depth": "1"}, nil)
		expect(t, l.user+"'s listing of "+l.path, r, http.StatusMultiStatus)
		if bytes.Contains(r.Body, []byte(".davgw")) || !bytes.Contains(r.Body, []byte(l.path+"f.txt<")) {
			t.Errorf("%s's listing of %s shows the reserved area or lacks f.txt: %s", l.user, l.path, r)
		}
	}

	if w := writes(allProxy.Since(allMark)); len(w) != 0 {
		t.Errorf("the attacks through the store of every bucket wrote to S3: %v", w)
	}
	if w := writes(upProxy.Since(upMark)); len(w) != 0 {
		t.Errorf("the attacks through the named store wrote to S3: %v", w)
	}
	after := bucketKeys(t, vg, bucket)
	if !maps.Equal(before, after) {
		t.Errorf("the bucket's keys changed:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	report(t, "reserved area: %d keys unchanged after %d attacks through a * store, a parent store and a root inside it; no S3 write", len(after), n)
}
