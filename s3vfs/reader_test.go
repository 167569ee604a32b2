package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestReader(t *testing.T) {
	s, _ := newTestStore(t, nil)
	ctx := context.Background()
	body := randomBytes(3*MiB+17, 9)
	if _, err := s.PutObject(ctx, "r", body, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("creating a reader and seeking to the end cost no request", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		r := s.NewReader(cctx, "r", info)
		end, err := r.Seek(0, io.SeekEnd)
		if err != nil || end != info.Size {
			t.Fatalf("Seek = %d, %v", end, err)
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 0 {
			t.Fatalf("%d requests", n.Load())
		}
	})
	t.Run("reading everything costs one request", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		r := s.NewReader(cctx, "r", info)
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		if n.Load() != 1 {
			t.Fatalf("%d requests", n.Load())
		}
	})
	t.Run("reading at the end returns EOF without a request", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		r := s.NewReader(cctx, "r", info)
		defer r.Close()
		if _, err := r.Seek(0, io.SeekEnd); err != nil {
			t.Fatal(err)
		}
		if k, err := r.Read(make([]byte, 10)); k != 0 || err != io.EOF {
			t.Fatalf("Read = %d, %v", k, err)
		}
		if n.Load() != 0 {
			t.Fatalf("%d requests", n.Load())
		}
	})
	t.Run("a window limits a ranged read to its end", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		r := s.NewReader(cctx, "r", info)
		defer r.Close()
		const start, end = MiB, 2*MiB - 1
		r.SetWindow(start, end)
		if _, err := r.Seek(start, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, end-start+1)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body[start:end+1]) {
			t.Fatal("window bytes differ")
		}
		if n.Load() != 1 {
			t.Fatalf("%d requests", n.Load())
		}
		// Reading on past the window opens a new request for the rest.
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(rest, body[end+1:]) {
			t.Fatalf("rest: %d bytes, %v", len(rest), err)
		}
		if n.Load() != 2 {
			t.Fatalf("%d requests", n.Load())
		}
	})
	t.Run("seeking to the current position keeps the open body", func(t *testing.T) {
		cctx, n := WithCallCounter(ctx)
		r := s.NewReader(cctx, "r", info)
		defer r.Close()
		buf := make([]byte, 100)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Seek(100, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Seek(0, io.SeekCurrent); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, body[100:200]) {
			t.Fatal(err)
		}
		if _, err := r.Seek(-50, io.SeekEnd); err != nil {
			t.Fatal(err)
		}
		tail, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(tail, body[len(body)-50:]) {
			t.Fatal(err)
		}
		if n.Load() != 2 {
			t.Fatalf("%d requests, want 2", n.Load())
		}
	})
	t.Run("an object replaced between reads fails instead of mixing bytes", func(t *testing.T) {
		if _, err := s.PutObject(ctx, "r2", body, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		info2, err := s.Head(ctx, "r2")
		if err != nil {
			t.Fatal(err)
		}
		r := s.NewReader(ctx, "r2", info2)
		defer r.Close()
		buf := make([]byte, 10)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutObject(ctx, "r2", randomBytes(len(body), 10), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Seek(MiB, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("Read = %v, want ErrPreconditionFailed", err)
		}
	})
	t.Run("a missing key is not found", func(t *testing.T) {
		r := s.NewReader(ctx, "missing", ObjectInfo{Size: 10})
		defer r.Close()
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read = %v", err)
		}
		if _, err := s.Head(ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Head = %v", err)
		}
	})
}

// cuttingClient cuts the body of the first GetObject after n bytes with a
// network error, as a connection reset mid-transfer does; later calls
// pass. When replace is set, it runs once the body was cut (the object
// changes before the re-read).
type cuttingClient struct {
	s3API
	n       int64
	cut     atomic.Bool
	replace func()
}

func (c *cuttingClient) GetObject(ctx context.Context, in *s3.GetObjectInput, opt ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := c.s3API.GetObject(ctx, in, opt...)
	if err != nil || !c.cut.CompareAndSwap(false, true) {
		return out, err
	}
	out.Body = &cutBody{ReadCloser: out.Body, left: c.n, after: c.replace}
	return out, nil
}

type cutBody struct {
	io.ReadCloser
	left  int64
	after func()
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		if b.after != nil {
			b.after()
			b.after = nil
		}
		return 0, io.ErrUnexpectedEOF
	}
	n, err := b.ReadCloser.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	return n, err
}

func TestReaderResumesACutBody(t *testing.T) {
	s, _ := newTestStore(t, nil)
	ctx := context.Background()
	body := randomBytes(3*MiB+5, 11)
	if _, err := s.PutObject(ctx, "cut", body, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	direct := s.client

	t.Run("a body cut mid-stream is re-read from the offset and arrives whole", func(t *testing.T) {
		s.client = &cuttingClient{s3API: direct, n: MiB + 3}
		defer func() { s.client = direct }()
		cctx, n := WithCallCounter(ctx)
		_, r, err := s.Get(cctx, "cut", "")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %d of %d bytes, %v", len(got), len(body), err)
		}
		if n.Load() != 2 {
			t.Fatalf("%d requests, want 2 (the GET and one ranged re-read)", n.Load())
		}
	})
	t.Run("an object replaced before the re-read fails the read instead of ending it short", func(t *testing.T) {
		c := &cuttingClient{s3API: direct, n: MiB}
		c.replace = func() {
			if _, err := s.PutObject(ctx, "cut2", randomBytes(len(body), 12), WriteOptions{}); err != nil {
				t.Error(err)
			}
		}
		if _, err := s.PutObject(ctx, "cut2", body, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		s.client = c
		defer func() { s.client = direct }()
		_, r, err := s.Get(ctx, "cut2", "")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("ReadAll = %d bytes, %v; want ErrPreconditionFailed", len(got), err)
		}
		if !bytes.Equal(got, body[:MiB]) {
			t.Fatalf("got %d bytes before the failure, want the first %d of the old version", len(got), MiB)
		}
	})
	t.Run("a cancelled reader is not resumed", func(t *testing.T) {
		s.client = &cuttingClient{s3API: direct, n: 10}
		defer func() { s.client = direct }()
		cctx, cancel := context.WithCancel(ctx)
		_, r, err := s.Get(cctx, "cut", "")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 10)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := r.Read(buf); err == nil {
			t.Fatal("Read after the cut and the cancel succeeded")
		}
	})
}
