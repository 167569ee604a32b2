package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
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
