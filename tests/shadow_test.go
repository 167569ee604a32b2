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
		{"an object x next to objects under x/ is shown as one folder x and the object is left alone (SeaweedFS only)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"x/child.txt", []byte("the child"), "text/plain")
			if err := e.tryPutS3(keyPrefix+"x", []byte("the shadowed object")); err != nil {
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
			if len(xs) != 1 || !xs[0].isCollection() {
				t.Errorf("PROPFIND Depth 1 lists x %d times (want once, as a collection): %s", len(xs), r)
			}

			g := e.alice(t, http.MethodGet, dir+"x", nil, nil)
			expect(t, "GET of x, a folder", g, http.StatusMethodNotAllowed)
			if bytes.Contains(g.Body, []byte("the shadowed object")) {
				t.Errorf("GET of the folder x served the shadowed object: %s", g)
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

			if got, ok := e.getS3(t, keyPrefix+"x"); !ok || string(got) != "the shadowed object" {
				t.Errorf("the object x holds %q (exists=%v) after the requests, want it untouched", got, ok)
			}
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("reading a shadowed folder changed S3: %s", d)
			}
		}},
	}
}
