package tests

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// tryPutS3 writes an object straight to S3 and returns S3's error, if any.
func (e *davEnv) tryPutS3(key string, body []byte) error {
	_, err := e.b.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &e.b.bucket, Key: aws.String(key), Body: bytes.NewReader(body)})
	return err
}

// shadowingStores are the back ends on which an object x and objects under
// x/ can both exist. versitygw (also embedded) keeps objects as files, so
// x cannot be a file and a directory at once and it refuses the layout.
var shadowingStores = map[string]bool{"seaweedfs": true}

func shadowCases() []conformanceCase {
	return []conformanceCase{
		{"an object x next to objects under x/: the file wins at x, x/ still lists the folder, nothing changes (SeaweedFS only)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"x/child.txt", []byte("the child"), "text/plain")
			if err := e.tryPutS3(keyPrefix+"x", []byte("the object x")); err != nil {
				if shadowingStores[e.b.name] {
					t.Fatalf("%s refused an object x next to x/child.txt, which this case needs: %v", e.b.name, err)
				}
				t.Skipf("%s refuses an object x next to x/ (%v); this case runs on SeaweedFS only", e.b.name, err)
			}
			if !shadowingStores[e.b.name] {
				t.Logf("%s accepts an object x next to x/: the case runs here too", e.b.name)
			}
			before := e.b.snapshot(t, keyPrefix)

			r := e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(propfindListing))
			expect(t, "PROPFIND Depth 1 of the case folder", r, http.StatusMultiStatus)
			var xs []msResponse
			for _, m := range parseMultistatus(t, r.Body) {
				if strings.TrimSuffix(hrefPath(t, m.Href), "/") == dir+"x" {
					xs = append(xs, m)
				}
			}
			if len(xs) != 1 || xs[0].isCollection() {
				t.Errorf("PROPFIND Depth 1 lists x %d times (want once, as a file): %s", len(xs), r)
			}

			g := e.alice(t, http.MethodGet, dir+"x", nil, nil)
			expect(t, "GET of x, the file", g, http.StatusOK)
			if string(g.Body) != "the object x" {
				t.Errorf("GET of x served %q, want the object x", g.Body)
			}
			for _, depth := range []string{"0", "1"} {
				p := e.alice(t, "PROPFIND", dir+"x", map[string]string{"Depth": depth}, []byte(propfindListing))
				expect(t, "PROPFIND Depth "+depth+" of x", p, http.StatusMultiStatus)
				ms := parseMultistatus(t, p.Body)
				if len(ms) != 1 || ms[0].isCollection() {
					t.Errorf("PROPFIND Depth %s of x answers %d responses (want the file alone): %s", depth, len(ms), p)
				}
			}

			c := e.alice(t, "PROPFIND", dir+"x/", map[string]string{"Depth": "1"}, []byte(propfindListing))
			expect(t, "PROPFIND Depth 1 of x/", c, http.StatusMultiStatus)
			found := false
			for _, m := range parseMultistatus(t, c.Body) {
				if hrefPath(t, m.Href) == dir+"x/child.txt" && !m.isCollection() {
					found = true
				}
			}
			if !found {
				t.Errorf("PROPFIND Depth 1 of x/ does not list the file child.txt: %s", c)
			}

			if got, ok := e.getS3(t, keyPrefix+"x"); !ok || string(got) != "the object x" {
				t.Errorf("the object x holds %q (exists=%v) after the requests, want it untouched", got, ok)
			}
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("reading x and x/ changed S3: %s", d)
			}
		}},
	}
}
