package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
)

// BenchmarkCompare measures every row of issue 8's table in one run, on
// versitygw (data on local disk) behind the counting proxy: direct S3
// through the same endpoint (aws-sdk-go-v2; the transfer manager for large
// objects), davgw (the real gateway with its default part size and
// concurrency) and rclone serve webdav v1.76.0 over the same bucket. Each
// measure runs its repetitions interleaved (direct, davgw, rclone, then
// again) and reports the median and the spread, the ratio to direct, and
// S3 requests per operation. With DAVGW_BENCH_OUT set it writes that file
// (BENCHMARKS.md). Run it with `bash .ci/bench`.
func BenchmarkCompare(b *testing.B) {
	rcloneBin := os.Getenv("DAVGW_RCLONE176")
	if rcloneBin == "" {
		b.Fatal("DAVGW_RCLONE176 must name an rclone v1.76.0 binary (bash .ci/bench builds it)")
	}
	e, direct := benchGateway(b)
	be := e.b
	root := "users/alice/bench-" + randHex(4) + "/"
	const reps = 5
	// Everything the measures read is in place before rclone starts: it
	// caches its listings for 5 minutes.
	prepareBench(b, e, root, reps)
	rc := startRcloneServe(b, rcloneBin, be, root)
	defer rc.stop()

	var rows []benchRow
	for range b.N {
		// The memory of a million-entry listing is measured first, while
		// this process holds no more than a fresh gateway does (later rows
		// fill caches and the proxy's call log, and the collector lets
		// garbage grow with them).
		huge := benchHugeListing(b, e, direct, root)
		rows = append(rows, benchSmallGet(b, e, direct, rc, root, reps))
		rows = append(rows, benchSmallPut(b, e, direct, rc, root, reps))
		rows = append(rows, benchPropfind(b, e, direct, rcloneBin, root, reps)...)
		rows = append(rows, benchLarge(b, e, direct, rc, root, reps)...)
		rows = append(rows, benchRange(b, e, direct, rc, root, reps))
		rows = append(rows, benchFirstSignIn(b, be, reps))
		rows = append(rows, benchPutRSS(b)...)
		rows = append(rows, huge...)
	}
	table := renderBench(rows, rcloneBin)
	// Kept times at scale (issue 8): rclone 1.76 fills one folder with
	// 10,000 files, as users run it.
	fill := "## Kept times at scale\n\n" + benchRcloneFill(b, e, rcloneBin, 10000, "") + ".\n"
	report(b, "%s\n%s", table, fill)
	if path := os.Getenv("DAVGW_BENCH_OUT"); path != "" {
		if err := writeBenchFile(path, benchSection{body: table}, benchSection{heading: "Kept times at scale", body: fill}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRow is one measure: for each system, its samples and S3 requests
// per operation. higher tells whether a larger value is better.
type benchRow struct {
	name    string
	unit    string
	higher  bool
	samples map[string][]float64 // by system: direct, davgw, rclone
	reqs    map[string]float64   // S3 requests per operation, by system
	note    string
}

var benchSystems = []string{"direct", "davgw", "rclone"}

// floorSystem is a row's bare relay: a net/http handler on loopback that
// only passes the operation to S3 with the same SDK client (no WebDAV, no
// sign-in). Its distance to direct is what one more HTTP exchange costs
// on this machine, measured in the same run: the floor of any gateway.
const floorSystem = "floor"

// systemsInTurn is benchSystems, and then extra (a row's floor), in the
// order of repetition rep: each repetition starts one system later, so
// that none always runs first (after a pause) or right after the same
// other system.
func systemsInTurn(rep int, extra ...string) []string {
	all := slices.Concat(benchSystems, extra)
	k := rep % len(all)
	return slices.Concat(all[k:], all[:k])
}

// floorNote tells a row's floor (its floorSystem samples), what the relay
// did, and where direct and davgw stand to it.
func floorNote(row benchRow, relays string) string {
	floor := row.samples[floorSystem]
	return fmt.Sprintf("the floor of any gateway, measured in the same run: a bare net/http handler on loopback that only %s with the same SDK client (no WebDAV, no sign-in) did %s %s [%s-%s], %.2fx of direct; davgw is %.2fx of that floor",
		relays, num(median(floor)), row.unit, num(slices.Min(floor)), num(slices.Max(floor)), median(floor)/median(row.samples["direct"]), median(row.samples["davgw"])/median(floor))
}

func newRow(name, unit string, higher bool) benchRow {
	return benchRow{name: name, unit: unit, higher: higher, samples: map[string][]float64{}, reqs: map[string]float64{}}
}

// rcloneServe is `rclone serve webdav` over the bench folder.
type rcloneServe struct {
	url  string
	pid  int
	stop func()
}

func startRcloneServe(b testing.TB, bin string, be *backend, root string) *rcloneServe {
	b.Helper()
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := []string{
		"RCLONE_CONFIG=/nonexistent",
		"RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Other",
		"RCLONE_CONFIG_BENCH_ENDPOINT=" + be.proxy.URL,
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=" + be.server.access,
		"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=" + be.server.secret,
		"RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true",
	}
	p, err := startProcess("rclone serve webdav", b.TempDir(), bin, env,
		"serve", "webdav", "bench:"+be.bucket+"/"+root, "--addr", addr)
	if err != nil {
		b.Fatal(err)
	}
	if err := waitHTTP(context.Background(), p, "http://"+addr+"/", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	return &rcloneServe{url: "http://" + addr, pid: p.cmd.Process.Pid, stop: func() { p.stop(5 * time.Second) }}
}

// benchClient is a keep-alive client for 16 workers.
var benchClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}}

// davReq sends one request to davgw (as alice) or to rclone (no auth) and
// drains the answer; it returns the status and the body's length.
func davReq(ctx context.Context, system, url, method string, header map[string]string, body io.Reader, size int64) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, 0, err
	}
	if body != nil {
		req.ContentLength = size
	}
	if system == "davgw" {
		req.SetBasicAuth("alice", testUsers["alice"])
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n, err
}

// baseURL is the WebDAV URL of the bench folder for davgw or rclone.
func baseURL(e *davEnv, rc *rcloneServe, root, system string) string {
	if system == "davgw" {
		return e.URL + "/dav/" + strings.TrimPrefix(root, "users/alice/")
	}
	return rc.url + "/"
}

// parallel runs n operations on 16 workers and returns operations/s.
func parallel(n int, op func(i int) error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), first
}

// Sizes of the bench data.
const (
	benchGetFiles = 64
	benchListed   = 10000
)

// prepareBench writes what the measures read: 1 KiB files, the folders the
// PUTs go into, a folder of 10,000 objects and a 64 MiB file.
func prepareBench(b *testing.B, e *davEnv, root string, reps int) {
	body := bytes.Repeat([]byte("k"), 1024)
	for i := range benchGetFiles {
		e.putS3(b, fmt.Sprintf("%sget/%02d.bin", root, i), body, "application/octet-stream")
	}
	for rep := range reps {
		for _, sys := range systemsInTurn(0, floorSystem) {
			e.putS3(b, fmt.Sprintf("%sput-%s-%d/", root, sys, rep), nil, "")
		}
	}
	e.putS3(b, root+"large/", nil, "")
	e.putManyS3(b, root+"list/", benchListed)
	data, _ := io.ReadAll(newPatternReader(64<<20, 7))
	e.putS3(b, root+"range/64m.bin", data, "application/octet-stream")
}

// parallelRow fills row with reps interleaved runs of n operations per
// system (and extra) on 16 workers: operations/s and S3 requests per
// operation.
func parallelRow(b *testing.B, e *davEnv, row benchRow, root string, reps, n int, op func(sys string, rep, i int) error, extra ...string) benchRow {
	for rep := range reps {
		for _, sys := range systemsInTurn(rep, extra...) {
			mark := e.b.proxy.Mark()
			rate, err := parallel(n, func(i int) error { return op(sys, rep, i) })
			if err != nil {
				b.Fatal(err)
			}
			row.samples[sys] = append(row.samples[sys], rate)
			row.reqs[sys] = float64(len(e.b.proxy.SinceUnder(mark, root))) / float64(n)
		}
	}
	return row
}

func benchSmallGet(b *testing.B, e *davEnv, direct *s3.Client, rc *rcloneServe, root string, reps int) benchRow {
	ctx := context.Background()
	const n = 5000
	name := func(i int) string { return fmt.Sprintf("get/%02d.bin", i%benchGetFiles) }
	directGet := func(i int) error {
		out, err := direct.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name(i))})
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, out.Body)
		out.Body.Close()
		return err
	}
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := direct.GetObject(r.Context(), &s3.GetObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + strings.TrimPrefix(r.URL.Path, "/"))})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer out.Body.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(aws.ToInt64(out.ContentLength), 10))
		_, _ = io.Copy(w, out.Body)
	}))
	defer relay.Close()
	row := parallelRow(b, e, newRow("GET of a 1 KiB file, 16 clients", "req/s", true), root, reps, n, func(sys string, rep, i int) error {
		url := relay.URL + "/" + name(i)
		switch sys {
		case "direct":
			return directGet(i)
		case "davgw", "rclone":
			url = baseURL(e, rc, root, sys) + name(i)
		}
		st, got, err := davReq(ctx, sys, url, http.MethodGet, nil, nil, 0)
		if err == nil && (st != http.StatusOK || got != 1024) {
			err = fmt.Errorf("%s GET %s (repetition %d): %d, %d bytes", sys, name(i), rep, st, got)
		}
		return err
	}, floorSystem)
	row.note = floorNote(row, "relays GetObject")
	return row
}

func benchSmallPut(b *testing.B, e *davEnv, direct *s3.Client, rc *rcloneServe, root string, reps int) benchRow {
	body := bytes.Repeat([]byte("p"), 4096)
	ctx := context.Background()
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := direct.PutObject(r.Context(), &s3.PutObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + strings.TrimPrefix(r.URL.Path, "/")), Body: bytes.NewReader(data)}); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer relay.Close()
	row := parallelRow(b, e, newRow("PUT of a 4 KiB file into an existing folder, 16 clients", "files/s", true), root, reps, 2500, func(sys string, rep, i int) error {
		name := fmt.Sprintf("put-%s-%d/%04d.bin", sys, rep, i)
		url := relay.URL + "/" + name
		switch sys {
		case "direct":
			_, err := direct.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name), Body: bytes.NewReader(body)})
			return err
		case "davgw", "rclone":
			url = baseURL(e, rc, root, sys) + name
		}
		st, _, err := davReq(ctx, sys, url, http.MethodPut, nil, bytes.NewReader(body), int64(len(body)))
		if err == nil && st != http.StatusCreated {
			err = fmt.Errorf("%s PUT %s: %d", sys, name, st)
		}
		return err
	}, floorSystem)
	row.note = floorNote(row, "reads the body and relays PutObject")
	return row
}

// benchPropfind lists a folder of 10,000 objects: cold (a fresh rclone, a
// folder davgw has not listed for longer than its caches keep anything)
// and warm (again at once), with the time to the first byte.
func benchPropfind(b *testing.B, e *davEnv, direct *s3.Client, rcloneBin, root string, reps int) []benchRow {
	const n = benchListed
	dir := "list/"
	cold := newRow("PROPFIND Depth 1 of 10,000 objects, cold", "s", false)
	warm := newRow("PROPFIND Depth 1 of 10,000 objects, warm", "s", false)
	first := newRow("PROPFIND Depth 1 of 10,000 objects, first byte (cold)", "s", false)
	ctx := context.Background()
	list := func(sys, url string) (total, ttfb time.Duration) {
		start := time.Now()
		if sys == "direct" {
			return directList(b, direct, e.b.bucket, root+dir, n)
		}
		req, _ := http.NewRequestWithContext(ctx, "PROPFIND", url, nil)
		req.Header.Set("Depth", "1")
		if sys == "davgw" {
			req.SetBasicAuth("alice", testUsers["alice"])
		}
		resp, err := benchClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.Peek(1); err != nil {
			b.Fatal(err)
		}
		ttfb = time.Since(start)
		data, err := io.ReadAll(br)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusMultiStatus {
			b.Fatalf("%s PROPFIND: %d, %v", sys, resp.StatusCode, err)
		}
		if got := bytes.Count(data, []byte("f-0")); got < n {
			b.Fatalf("%s PROPFIND lists %d of %d objects", sys, got, n)
		}
		return time.Since(start), ttfb
	}
	for rep := range reps {
		for _, sys := range systemsInTurn(rep) {
			url := ""
			var stop func()
			switch sys {
			case "davgw":
				url = baseURL(e, nil, root, sys) + dir
				time.Sleep(6 * time.Second) // past every cache of the gateway
			case "rclone":
				rc := startRcloneServe(b, rcloneBin, e.b, root)
				url, stop = rc.url+"/"+dir, rc.stop
			}
			mark := e.b.proxy.Mark()
			c, ttfb := list(sys, url)
			reqs := float64(len(e.b.proxy.SinceUnder(mark, root)))
			w, _ := list(sys, url)
			cold.samples[sys] = append(cold.samples[sys], c.Seconds())
			warm.samples[sys] = append(warm.samples[sys], w.Seconds())
			first.samples[sys] = append(first.samples[sys], ttfb.Seconds())
			cold.reqs[sys] = reqs
			if stop != nil {
				stop()
			}
		}
	}
	return []benchRow{cold, warm, first}
}

func benchLarge(b *testing.B, e *davEnv, direct *s3.Client, rc *rcloneServe, root string, reps int) []benchRow {
	const size = 1 << 30
	put := newRow("PUT 1 GiB with Content-Length", "MB/s", true)
	chunked := newRow("PUT 1 GiB chunked (no length)", "MB/s", true)
	get := newRow("GET 1 GiB", "MB/s", true)
	tm := transfermanager.New(direct, func(o *transfermanager.Options) { o.PartSizeBytes = 16 << 20; o.Concurrency = 4 })
	ctx := context.Background()
	mbps := func(d time.Duration) float64 { return size / 1e6 / d.Seconds() }
	// The chunked PUT's floor: the transfer manager on the request body.
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := tm.UploadObject(r.Context(), &transfermanager.UploadObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + strings.TrimPrefix(r.URL.Path, "/")),
			Body: onlyReader{r.Body}}); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer relay.Close()
	for rep := range reps {
		for _, sys := range systemsInTurn(rep, floorSystem) {
			name := fmt.Sprintf("large/%s-%d.bin", sys, rep)
			if sys == floorSystem {
				// Each PUT starts with no dirty pages of the one before:
				// versitygw's disk writes back the last GiB otherwise.
				syscall.Sync()
				start := time.Now()
				st, _, err := davReq(ctx, sys, relay.URL+"/"+name, http.MethodPut, nil, onlyReader{newPatternReader(size, uint64(rep+1))}, -1)
				if err != nil || st != http.StatusCreated {
					b.Fatalf("relay PUT 1 GiB: %d, %v", st, err)
				}
				chunked.samples[sys] = append(chunked.samples[sys], mbps(time.Since(start)))
				if _, err := direct.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name)}); err != nil {
					b.Fatal(err)
				}
				continue
			}
			for _, withLength := range []bool{true, false} {
				syscall.Sync()
				start := time.Now()
				if sys == "direct" {
					if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name),
						Body: onlyReader{newPatternReader(size, uint64(rep+1))}}); err != nil {
						b.Fatal(err)
					}
				} else {
					var body io.Reader = onlyReader{newPatternReader(size, uint64(rep+1))}
					n := int64(-1)
					if withLength {
						n = size
					}
					st, _, err := davReq(ctx, sys, baseURL(e, rc, root, sys)+name, http.MethodPut, nil, body, n)
					if err != nil || (st != http.StatusCreated && st != http.StatusNoContent) {
						b.Fatalf("%s PUT 1 GiB: %d, %v", sys, st, err)
					}
				}
				if withLength {
					put.samples[sys] = append(put.samples[sys], mbps(time.Since(start)))
				} else {
					chunked.samples[sys] = append(chunked.samples[sys], mbps(time.Since(start)))
				}
			}
			start := time.Now()
			var got int64
			if sys == "direct" {
				out, err := direct.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name)})
				if err != nil {
					b.Fatal(err)
				}
				got, err = io.Copy(io.Discard, out.Body)
				out.Body.Close()
				if err != nil {
					b.Fatal(err)
				}
			} else {
				st, n, err := davReq(ctx, sys, baseURL(e, rc, root, sys)+name, http.MethodGet, nil, nil, 0)
				if err != nil || st != http.StatusOK {
					b.Fatalf("%s GET 1 GiB: %d, %v", sys, st, err)
				}
				got = n
			}
			if got != size {
				b.Fatalf("%s GET 1 GiB: %d bytes", sys, got)
			}
			get.samples[sys] = append(get.samples[sys], mbps(time.Since(start)))
			if _, err := direct.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	put.note = "direct: the transfer manager, 16 MiB parts x 4"
	chunked.note = "direct: the transfer manager on a reader of unknown length; " + floorNote(chunked, "relays the request body to the transfer manager")
	return []benchRow{put, chunked, get}
}

// benchPutRSS PUTs 1 GiB, with and without Content-Length, through the
// gateway binary as operators run it (16 MiB parts x 4), each into a
// fresh process, and reads the process's peak resident set (VmHWM)
// afterwards: issue 8's bound is part_size x upload_concurrency + 64 MiB.
func benchPutRSS(b *testing.B) []benchRow {
	const size = 1 << 30
	rows := []benchRow{
		newRow("PUT 1 GiB with Content-Length, peak RSS of the gateway binary (16 MiB x 4)", "MiB", false),
		newRow("PUT 1 GiB chunked, peak RSS of the gateway binary (16 MiB x 4)", "MiB", false),
	}
	for i, withLength := range []bool{true, false} {
		g := serveBinary(b, 1024, "", "part_size = \"16MiB\"\nupload_concurrency = 4", map[string]string{"alice": "rss-pw"})
		n := int64(-1)
		if withLength {
			n = size
		}
		req, err := http.NewRequest(http.MethodPut, g.base+"/dav/rss-"+randHex(4)+".bin", onlyReader{newPatternReader(size, 7)})
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = n
		req.SetBasicAuth("alice", "rss-pw")
		resp, err := benchClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("PUT 1 GiB through the binary: %d", resp.StatusCode)
		}
		rows[i].samples["davgw"] = []float64{float64(processPeakRSS(g.p.cmd.Process.Pid)) / (1 << 20)}
		rows[i].note = "one run; the bound of issue 8 is 16 MiB x 4 + 64 MiB = 128 MiB"
		g.p.stop(5 * time.Second)
	}
	return rows
}

// processPeakRSS reads a process's VmHWM in bytes (0 if unknown).
func processPeakRSS(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func benchRange(b *testing.B, e *davEnv, direct *s3.Client, rc *rcloneServe, root string, reps int) benchRow {
	const n = 40
	row := newRow("Range GET of 1 MiB (sequential, median latency)", "ms", false)
	name := "range/64m.bin"
	ctx := context.Background()
	for rep := range reps {
		for _, sys := range systemsInTurn(rep) {
			var lat []float64
			mark := e.b.proxy.Mark()
			for i := range n {
				off := int64(i%60) << 20
				rng := fmt.Sprintf("bytes=%d-%d", off, off+(1<<20)-1)
				start := time.Now()
				var got int64
				if sys == "direct" {
					out, err := direct.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.b.bucket, Key: aws.String(root + name), Range: &rng})
					if err != nil {
						b.Fatal(err)
					}
					got, _ = io.Copy(io.Discard, out.Body)
					out.Body.Close()
				} else {
					st, n, err := davReq(ctx, sys, baseURL(e, rc, root, sys)+name, http.MethodGet, map[string]string{"Range": rng}, nil, 0)
					if err != nil || st != http.StatusPartialContent {
						b.Fatalf("%s Range GET: %d, %v", sys, st, err)
					}
					got = n
				}
				if got != 1<<20 {
					b.Fatalf("%s Range GET: %d bytes", sys, got)
				}
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
			}
			row.samples[sys] = append(row.samples[sys], median(lat))
			row.reqs[sys] = float64(len(e.b.proxy.SinceUnder(mark, root))) / n
		}
	}
	return row
}

// benchFirstSignIn times a user's first request with a real bcrypt cost
// (12) against the next one, on a gateway of its own.
func benchFirstSignIn(b *testing.B, be *backend, reps int) benchRow {
	row := newRow("first request of a user (Basic, bcrypt cost 12), extra time", "ms", false)
	h, err := auth.HashPasswordCost("bench-pw", bcrypt.DefaultCost+2)
	if err != nil {
		b.Fatal(err)
	}
	for range reps {
		a, err := auth.NewStatic([]auth.StaticUser{{Name: "alice", PasswordHash: h}}, "users/{username}/")
		if err != nil {
			b.Fatal(err)
		}
		e, err := newDavEnv(a, be, be.proxy.URL, 16<<20, 4)
		if err != nil {
			b.Fatal(err)
		}
		timeOne := func() time.Duration {
			req, _ := http.NewRequest("PROPFIND", e.URL+"/dav/", nil)
			req.Header.Set("Depth", "0")
			req.SetBasicAuth("alice", "bench-pw")
			start := time.Now()
			resp, err := benchClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return time.Since(start)
		}
		firstT, next := timeOne(), timeOne()
		row.samples["davgw"] = append(row.samples["davgw"], float64((firstT-next).Microseconds())/1000)
		e.srv.Close()
	}
	row.note = "once per 15 idle minutes per credential (was: every minute); rclone serve and direct S3 have no sign-in here"
	return row
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func renderBench(rows []benchRow, rcloneBin string) string {
	var sb strings.Builder
	sb.WriteString("# Benchmarks\n\nWritten by `bash .ci/bench` (BenchmarkCompare in tests/compare_bench_test.go). ")
	sb.WriteString("versitygw v1.8.0 with its data on local disk, behind the suite's counting proxy; direct S3 is aws-sdk-go-v2 ")
	sb.WriteString("through the same proxy; davgw runs in process with its defaults (16 MiB parts x 4); rclone is `rclone serve webdav` ")
	sb.WriteString("over the same bucket. Each cell is the median of the interleaved repetitions [min-max]; the ratio is to direct S3 ")
	sb.WriteString("(for times, direct/system, so above 1 is faster); `req/op` counts S3 requests per operation at the proxy.\n\n")
	sb.WriteString(benchFacts() + " `bash .ci/load` writes the \"Mixed load\" part below and names its own run.\n\n")
	if out, err := exec.Command(rcloneBin, "version").Output(); rcloneBin != "" && err == nil {
		fmt.Fprintf(&sb, "rclone: %s\n\n", strings.SplitN(string(out), "\n", 2)[0])
	}
	sb.WriteString("| measure | unit | direct S3 | davgw | ratio | rclone serve | ratio | req/op direct / davgw / rclone |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		cell := func(sys string) string {
			s := r.samples[sys]
			if len(s) == 0 {
				return "-"
			}
			return fmt.Sprintf("%s [%s-%s]", num(median(s)), num(slices.Min(s)), num(slices.Max(s)))
		}
		ratio := func(sys string) string {
			d, s := median(r.samples["direct"]), median(r.samples[sys])
			if len(r.samples["direct"]) == 0 || len(r.samples[sys]) == 0 || d == 0 || s == 0 {
				return "-"
			}
			if r.higher {
				return fmt.Sprintf("%.2fx", s/d)
			}
			return fmt.Sprintf("%.2fx", d/s)
		}
		reqs := func(sys string) string {
			v, ok := r.reqs[sys]
			if !ok {
				return "-"
			}
			return num(v)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s |\n", r.name, r.unit, cell("direct"), cell("davgw"), ratio("davgw"),
			cell("rclone"), ratio("rclone"), reqs("direct"), reqs("davgw"), reqs("rclone"))
	}
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(&sb, "\n- %s: %s", r.name, r.note)
		}
	}
	sb.WriteString("\n")
	return sb.String()
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return fmt.Sprintf("%.0f GiB of memory", float64(kb)/(1<<20))
		}
	}
	return "memory unknown"
}

// BenchmarkHugeListing is the 1,000,000-object rows of BenchmarkCompare
// alone:
//
//	go test -run '^$' -bench BenchmarkHugeListing -benchtime 1x ./tests/
func BenchmarkHugeListing(b *testing.B) {
	e, direct := benchGateway(b)
	for range b.N {
		rows := benchHugeListing(b, e, direct, "users/alice/bench-"+randHex(4)+"/")
		fmt.Print(renderBench(rows, ""))
	}
}

// benchHugeListing lists 1,000,000 objects that the counting proxy
// generates (no S3 server here lists a million keys of one folder in
// reasonable time): direct S3 with the SDK's paginator, and davgw's
// PROPFIND Depth 1 with its time to the first byte and the growth of this
// process's resident memory while the answer streams. The gateway, the
// proxy and the client share the process, so the growth is an upper
// bound for the gateway's. One run each (a run takes tens of seconds).
func benchHugeListing(b *testing.B, e *davEnv, direct *s3.Client, root string) []benchRow {
	const n = 1_000_000
	dir := "huge/"
	clear := e.b.proxy.synthesize(root+dir, n)
	defer clear()
	total := newRow("PROPFIND Depth 1 of 1,000,000 objects (listing generated by the proxy)", "s", false)
	first := newRow("PROPFIND Depth 1 of 1,000,000 objects, first byte", "s", false)
	growth := newRow("PROPFIND Depth 1 of 1,000,000 objects, RSS growth of the process", "MiB", false)
	ctx := context.Background()

	mark := e.b.proxy.Mark()
	took, ttfb := directList(b, direct, e.b.bucket, root+dir, n)
	total.samples["direct"] = []float64{took.Seconds()}
	first.samples["direct"] = []float64{ttfb.Seconds()}
	total.reqs["direct"] = float64(len(e.b.proxy.SinceUnder(mark, root)))

	runtime.GC()
	debug.FreeOSMemory()
	base := currentRSS()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			peak.Store(max(peak.Load(), currentRSS()))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	mark = e.b.proxy.Mark()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "PROPFIND", baseURL(e, nil, root, "davgw")+dir, nil)
	req.Header.Set("Depth", "1")
	req.SetBasicAuth("alice", testUsers["alice"])
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	if _, err := br.Peek(1); err != nil {
		b.Fatal(err)
	}
	ttfb = time.Since(start)
	responses := &patternCounter{pat: []byte("</D:response>")}
	_, err = io.Copy(responses, br)
	resp.Body.Close()
	took = time.Since(start)
	close(stop)
	sampling.Wait()
	if err != nil || resp.StatusCode != http.StatusMultiStatus {
		b.Fatalf("davgw PROPFIND of %d objects: %d, %v", n, resp.StatusCode, err)
	}
	if responses.n != n+1 {
		b.Fatalf("davgw PROPFIND lists %d responses, want %d", responses.n, n+1)
	}
	total.samples["davgw"] = []float64{took.Seconds()}
	first.samples["davgw"] = []float64{ttfb.Seconds()}
	growth.samples["davgw"] = []float64{float64(peak.Load()-min(base, peak.Load())) / (1 << 20)}
	total.reqs["davgw"] = float64(len(e.b.proxy.SinceUnder(mark, root)))
	growth.note = fmt.Sprintf("resident memory of the whole test process (gateway, proxy generating the pages, client) "+
		"sampled every 20 ms: %.0f MiB before, peak %.0f MiB while davgw streamed %d responses (%d MiB of XML); rclone serve "+
		"is left out of this row (it keeps whole listings in memory)", float64(base)/(1<<20), float64(peak.Load())/(1<<20), responses.n, responses.bytes>>20)
	return []benchRow{total, first, growth}
}

// currentRSS reads this process's resident set from /proc/self/statm.
func currentRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// patternCounter counts the occurrences of pat in what is written to it,
// across writes.
type patternCounter struct {
	pat   []byte
	tail  []byte
	n     int
	bytes int64
}

func (c *patternCounter) Write(p []byte) (int, error) {
	c.bytes += int64(len(p))
	buf := append(c.tail, p...)
	c.n += bytes.Count(buf, c.pat)
	keep := min(len(buf), len(c.pat)-1)
	c.tail = append(c.tail[:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

// directList lists prefix (one level) with the SDK's paginator and checks
// it holds want objects: the time it took and the time to the first page.
func directList(b *testing.B, direct *s3.Client, bucket, prefix string, want int) (total, firstPage time.Duration) {
	start := time.Now()
	p := s3.NewListObjectsV2Paginator(direct, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	count := 0
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if firstPage == 0 {
			firstPage = time.Since(start)
		}
		count += len(page.Contents)
	}
	if count != want {
		b.Fatalf("direct listing: %d objects, want %d", count, want)
	}
	return time.Since(start), firstPage
}

// benchGateway starts the benchmarks' gateway over versitygw behind the
// counting proxy, with davgw's defaults (16 MiB parts x 4), and the direct
// S3 client through the same proxy; the gateway stops with the benchmark.
func benchGateway(b *testing.B) (*davEnv, *s3.Client) {
	be := getEnv(b, "versitygw").b
	e, err := newDavEnv(staticAuth(b), be, be.proxy.URL, 16<<20, 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.srv.Close)
	direct := newS3Client(be.proxy.URL, be.server.access, be.server.secret,
		&http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}})
	return e, direct
}

// BenchmarkPutRSS is the peak-RSS rows of BenchmarkCompare alone:
//
//	go test -run '^$' -bench BenchmarkPutRSS -benchtime 1x ./tests/
func BenchmarkPutRSS(b *testing.B) {
	for range b.N {
		fmt.Print(renderBench(benchPutRSS(b), ""))
	}
}
