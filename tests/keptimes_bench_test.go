package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// BenchmarkKeptTimes measures what kept modification times cost, against a
// baseline measured in the same run:
//   - a PROPFIND Depth 1 of 10,000 objects whose times are all kept (the
//     folder index holds 10,000 entries), against the same listing of a
//     folder without an index: S3 requests and time;
//   - PUTs with X-OC-Mtime (object + read-modify-write of the index),
//     against PUTs without.
func BenchmarkKeptTimes(b *testing.B) {
	e := getEnv(b, "versitygw")
	const n = 10000
	const kept = int64(1700000000)
	for range b.N {
		withIdx, _ := e.caseDirB(b, "kept")
		plain, _ := e.caseDirB(b, "plain")
		e.putManyS3(b, withIdx, n)
		e.putManyS3(b, plain, n)
		// The index as the gateway writes it: one entry per object, keyed
		// by the object's ETag (the MD5 of its body for these small PUTs).
		entries := map[string]map[string]any{}
		for i := range n {
			name := fmt.Sprintf("f-%05d.txt", i)
			sum := md5.Sum([]byte(withIdx + name))
			entries[name] = map[string]any{"e": `"` + hex.EncodeToString(sum[:]) + `"`, "m": kept * 1e9}
		}
		body, _ := json.Marshal(map[string]any{"v": 1, "entries": entries})
		if _, err := e.b.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.b.bucket,
			Key: aws.String(withIdx + ".davgw-index.json"), Body: bytes.NewReader(body)}); err != nil {
			b.Fatal(err)
		}

		list := func(keyPrefix string) (time.Duration, int, []byte) {
			dir := "/dav/" + strings.TrimPrefix(keyPrefix, "users/alice/")
			mark := e.b.proxy.Mark()
			start := time.Now()
			r := e.alice(b, "PROPFIND", dir, map[string]string{"Depth": "1"},
				[]byte(`<D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/><D:getcontentlength/><D:resourcetype/></D:prop></D:propfind>`))
			d := time.Since(start)
			expect(b, "PROPFIND Depth 1", r, http.StatusMultiStatus)
			return d, len(e.b.proxy.SinceUnder(mark, keyPrefix)), r.Body
		}
		list(plain) // warm both folders' pages in the store's caches alike
		list(withIdx)
		dPlain, cPlain, _ := list(plain)
		dKept, cKept, bodyKept := list(withIdx)
		if got := strings.Count(string(bodyKept), "Tue, 14 Nov 2023 22:13:20 GMT"); got != n {
			b.Fatalf("the listing shows the kept time on %d of %d entries", got, n)
		}
		b.ReportMetric(float64(cKept), "kept-listing-S3-requests")
		b.ReportMetric(float64(cPlain), "plain-listing-S3-requests")
		b.ReportMetric(float64(dKept.Milliseconds()), "kept-listing-ms")
		b.ReportMetric(float64(dPlain.Milliseconds()), "plain-listing-ms")
		report(b, "kept times: PROPFIND Depth 1 of %d objects with kept times: %d S3 requests in %v; without: %d requests in %v (time ratio %.2f; index %d KB)",
			n, cKept, dKept.Round(time.Millisecond), cPlain, dPlain.Round(time.Millisecond),
			float64(dKept)/float64(dPlain), len(body)/1024)

		// PUT cost, sequential, into fresh folders.
		const puts = 300
		putAll := func(dir string, mtime bool) time.Duration {
			start := time.Now()
			for i := range puts {
				h := map[string]string{}
				if mtime {
					h["X-OC-Mtime"] = "1700000000"
				}
				r := e.alice(b, http.MethodPut, fmt.Sprintf("%sp-%04d.txt", dir, i), h, []byte("x"))
				expect(b, "PUT", r, http.StatusCreated)
			}
			return time.Since(start)
		}
		_, dirA := e.caseDirB(b, "put-plain")
		_, dirB := e.caseDirB(b, "put-kept")
		tPlain := putAll(dirA, false)
		tKept := putAll(dirB, true)
		b.ReportMetric(float64(tKept.Microseconds())/puts/1000, "kept-put-ms")
		b.ReportMetric(float64(tPlain.Microseconds())/puts/1000, "plain-put-ms")
		report(b, "kept times: %d sequential PUTs into one folder with X-OC-Mtime: %.2f ms each; without: %.2f ms each (ratio %.2f)",
			puts, float64(tKept.Microseconds())/puts/1000, float64(tPlain.Microseconds())/puts/1000, float64(tKept)/float64(tPlain))
	}
}

// caseDirB is caseDir for a benchmark.
func (e *davEnv) caseDirB(b *testing.B, name string) (keyPrefix, davPath string) {
	b.Helper()
	slug := name + "-" + randHex(4)
	keyPrefix = "users/alice/" + slug + "/"
	e.putS3(b, keyPrefix, nil, "")
	return keyPrefix, "/dav/" + slug + "/"
}
