package tests

import (
	"context"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/davgw/davgw/s3vfs"
)

// memSampler records the peak heap of this process every 10 ms.
type memSampler struct {
	stop     chan struct{}
	done     sync.WaitGroup
	mu       sync.Mutex
	heapIn   uint64
	heapSys  uint64
	samples  int
	interval time.Duration
}

func startMemSampler() *memSampler {
	m := &memSampler{stop: make(chan struct{}), interval: 10 * time.Millisecond}
	m.sample()
	m.done.Go(func() {
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.sample()
			}
		}
	})
	return m
}

func (m *memSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mu.Lock()
	m.heapIn = max(m.heapIn, ms.HeapInuse)
	m.heapSys = max(m.heapSys, ms.HeapSys)
	m.samples++
	m.mu.Unlock()
}

// Stop ends sampling and returns the peaks in bytes.
func (m *memSampler) Stop() (heapInuse, heapSys uint64, samples int) {
	close(m.stop)
	m.done.Wait()
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heapIn, m.heapSys, m.samples
}

// peakRSS reads VmHWM (the process' peak resident set) in bytes.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkPutUnknownLength2GiB PUTs 2 GiB of unknown length (chunked,
// generated on the fly) through the gateway to versitygw with 16 MiB parts
// and 4 part buffers, and fails if the peak heap exceeds
// part_size x upload_concurrency + 64 MiB. The same upload straight through
// s3vfs.Writer (no HTTP, no WebDAV) is the baseline for throughput.
//
//	go test -run '^$' -bench BenchmarkPut -benchtime 1x ./tests/
func BenchmarkPutUnknownLength2GiB(b *testing.B) {
	const (
		size        = 2 << 30
		partSize    = 16 << 20
		concurrency = 4
		limit       = partSize*concurrency + 64<<20
	)
	be := getBackend(b, "versitygw")
	e, err := newDavEnv(staticAuth(b), be, be.server.endpoint, partSize, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	defer e.srv.Close()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	ctx := context.Background()
	key := "users/alice/bench-2gib.bin"
	defer func() {
		_, _ = be.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &be.bucket, Key: aws.String(key)})
	}()

	b.SetBytes(size)
	var heapIn, heapSys uint64
	var gwTook time.Duration
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		sampler := startMemSampler()
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.URL+"/dav/bench-2gib.bin",
			onlyReader{newPatternReader(size, 42)})
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = -1 // Transfer-Encoding: chunked, like Finder
		req.SetBasicAuth("alice", testUsers["alice"])
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		gwTook = time.Since(start)
		in, sys, _ := sampler.Stop()
		heapIn, heapSys = max(heapIn, in), max(heapSys, sys)
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
			b.Fatalf("PUT of 2 GiB answered %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	rss := peakRSS()

	out, err := be.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &be.bucket, Key: aws.String(key)})
	if err != nil {
		b.Fatal(err)
	}
	if got := aws.ToInt64(out.ContentLength); got != size {
		b.Fatalf("stored object has %d bytes, want %d", got, size)
	}

	// Baseline: the same bytes straight through s3vfs.Writer.
	runtime.GC()
	baseSampler := startMemSampler()
	start := time.Now()
	w := e.store.NewWriter(ctx, "users/alice/bench-2gib-direct.bin", s3vfs.WriteOptions{Size: -1})
	if _, err := w.ReadFrom(newPatternReader(size, 43)); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	directTook := time.Since(start)
	baseHeap, _, _ := baseSampler.Stop()
	_, _ = be.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &be.bucket, Key: aws.String("users/alice/bench-2gib-direct.bin")})

	const mib = 1 << 20
	gwMBps := float64(size) / 1e6 / gwTook.Seconds()
	directMBps := float64(size) / 1e6 / directTook.Seconds()
	b.ReportMetric(float64(heapIn)/mib, "peak-heap-inuse-MiB")
	b.ReportMetric(float64(heapSys)/mib, "peak-heap-sys-MiB")
	b.ReportMetric(float64(rss)/mib, "peak-rss-MiB")
	b.ReportMetric(gwMBps, "gateway-MB/s")
	b.ReportMetric(directMBps, "s3vfs-direct-MB/s")
	b.ReportMetric(gwMBps/directMBps, "gateway/direct")
	report(b, "memory: PUT 2 GiB chunked through the gateway to versitygw (part 16 MiB x 4): peak HeapInuse %.1f MiB, "+
		"peak HeapSys %.1f MiB, peak RSS (VmHWM) %.1f MiB, limit %d MiB; %.0f MB/s in %v; "+
		"s3vfs.Writer direct: %.0f MB/s in %v, peak HeapInuse %.1f MiB; gateway/direct throughput %.2f",
		float64(heapIn)/mib, float64(heapSys)/mib, float64(rss)/mib, limit/mib, gwMBps, gwTook.Round(time.Millisecond),
		directMBps, directTook.Round(time.Millisecond), float64(baseHeap)/mib, gwMBps/directMBps)
	if heapIn > limit {
		b.Errorf("peak HeapInuse %.1f MiB exceeds part_size x upload_concurrency + 64 MiB = %d MiB",
			float64(heapIn)/mib, limit/mib)
	}
}
