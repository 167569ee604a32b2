package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

		bin, err := toolPath("DAVGW_RCLONE", "rclone", "")
		requireTool(b, err)
		benchRcloneFill(b, e, bin, fillFiles(), os.Getenv("DAVGW_FILL_PACER"))
	}
}

// fillFiles is the number of files benchRcloneFill copies: 10,000, or
// DAVGW_FILL_FILES (.ci/run uses 2,000: rclone 1.60 from Debian spaces its
// calls 10 ms apart, so 10,000 files would take 7 minutes).
func fillFiles() int {
	if v, err := strconv.Atoi(os.Getenv("DAVGW_FILL_FILES")); err == nil && v > 0 {
		return v
	}
	return 10000
}

// BenchmarkRcloneFill is benchRcloneFill alone (DAVGW_FILL_FILES sets
// the number of files, DAVGW_FILL_PACER rclone's --webdav-pacer-min-sleep,
// which rclone 1.76 has and 1.60 has not):
//
//	go test -run '^$' -bench BenchmarkRcloneFill -benchtime 1x ./tests/
func BenchmarkRcloneFill(b *testing.B) {
	e := getEnv(b, "versitygw")
	bin, err := toolPath("DAVGW_RCLONE", "rclone", "")
	requireTool(b, err)
	for range b.N {
		fmt.Println(benchRcloneFill(b, e, bin, fillFiles(), os.Getenv("DAVGW_FILL_PACER")))
	}
}

// benchRcloneFill copies 10,000 small files into one folder with rclone
// (4 transfers, its default), with vendor owncloud (X-OC-Mtime on every
// PUT: each kept time goes into the folder's index) and, as the baseline,
// vendor other (no times). It prints both rates and their ratio, and
// fails if the index bytes written exceed 10 times the final index's size
// (a count, not a time: the index writes must add up to O(N), not O(N^2)).
func benchRcloneFill(b *testing.B, e *davEnv, bin string, n int, pacerSleep string) (summary string) {
	// rclone's webdav backend spaces its calls 10 ms apart by default (50
	// files/s, for both vendors alike); a shorter spacing measures more of
	// the gateway.
	var pacer []string
	if pacerSleep != "" {
		pacer = []string{"--webdav-pacer-min-sleep", pacerSleep}
	}
	src := b.TempDir()
	mtime := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	for i := range n {
		p := filepath.Join(src, fmt.Sprintf("file-%05d.txt", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("content of file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			b.Fatal(err)
		}
	}
	rate := map[string]float64{}
	for _, vendor := range []string{"other", "owncloud"} {
		keyPrefix, dir := e.caseDirB(b, "fill-"+vendor)
		rc := newRcloneRunner(b, bin, e.URL+dir, vendor)
		rc.timeout = 15 * time.Minute // 10,000 files at rclone's default 50 a second take 200 s
		mark := e.b.proxy.Mark()
		start := time.Now()
		rc.run(b, append([]string{"copy", src, "dav:"}, pacer...)...)
		if err := e.gw.WritePending(context.Background()); err != nil { // what the copy left pending counts too
			b.Fatal(err)
		}
		took := time.Since(start)
		rate[vendor] = float64(n) / took.Seconds()
		report(b, "kept times: rclone copy of %d files (vendor %s) in %v: S3 requests %v", n, vendor,
			took.Round(time.Millisecond), countOps(e.b.proxy.SinceUnder(mark, keyPrefix)))
		if vendor == "other" {
			continue
		}
		var written, writes int64
		for _, c := range e.b.proxy.SinceUnder(mark, keyPrefix) {
			if c.Op() == "PutObject" && c.Key == keyPrefix+".davgw-index.json" {
				written += c.Size
				writes++
			}
		}
		idx, ok := e.getS3(b, keyPrefix+".davgw-index.json")
		if !ok {
			b.Fatal("no index after the owncloud copy")
		}
		final := int64(len(idx))
		r := e.alice(b, "PROPFIND", dir, map[string]string{"Depth": "1"}, []byte(`<D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/></D:prop></D:propfind>`))
		expect(b, "PROPFIND of the filled folder", r, http.StatusMultiStatus)
		if got := strings.Count(string(r.Body), "Tue, 14 Nov 2023 22:13:20 GMT"); got != n {
			b.Errorf("the listing shows the kept time on %d of %d files", got, n)
		}
		b.ReportMetric(float64(written)/float64(final), "index-bytes-per-final-byte")
		spacing := "rclone's default 10 ms between calls"
		if pacerSleep != "" {
			spacing = "--webdav-pacer-min-sleep " + pacerSleep
		}
		summary = fmt.Sprintf("rclone copy of %d files into one folder (%s): vendor owncloud (X-OC-Mtime, kept times) "+
			"%.0f files/s, vendor other (no times) %.0f files/s, ratio %.2f; the folder's index was written %d times, "+
			"%d KB in all, %.1f times its final %d KB",
			n, spacing, rate["owncloud"], rate["other"], rate["owncloud"]/rate["other"], writes, written/1024,
			float64(written)/float64(final), final/1024)
		report(b, "kept times: %s", summary)
		if written > 10*final {
			b.Errorf("index bytes written %d > 10 x the final index (%d bytes)", written, final)
		}
	}
	return summary
}

// caseDirB is caseDir for a benchmark.
func (e *davEnv) caseDirB(b *testing.B, name string) (keyPrefix, davPath string) {
	b.Helper()
	slug := name + "-" + randHex(4)
	keyPrefix = "users/alice/" + slug + "/"
	e.putS3(b, keyPrefix, nil, "")
	return keyPrefix, "/dav/" + slug + "/"
}
