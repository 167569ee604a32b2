package s3vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// onlyReader hides every method of r but Read (so io.Copy cannot use
// WriterTo shortcuts).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestWriter(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	body23 := randomBytes(23*MiB, 1)

	tests := []struct {
		name      string
		size      int64
		body      []byte
		wantParts bool
	}{
		{"a small body of unknown size is one PutObject", -1, []byte("hello"), false},
		{"a small body of known size is one PutObject", 5, []byte("hello"), false},
		{"an empty body is one PutObject", 0, nil, false},
		{"a body of exactly one part is one PutObject", MinPartSize, body23[:MinPartSize], false},
		{"23 MiB of unknown size go in 5 MiB parts", -1, body23, true},
		{"23 MiB of known size go in 5 MiB parts", int64(len(body23)), body23, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "w/" + strings.ReplaceAll(tt.name, " ", "-")
			cctx, n := WithCallCounter(ctx)
			w := s.NewWriter(cctx, key, WriteOptions{Size: tt.size, ContentType: "text/x-test", Metadata: map[string]string{"mtime": "42"}})
			if _, err := io.Copy(w, onlyReader{bytes.NewReader(tt.body)}); err != nil {
				t.Fatal(err)
			}
			info, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if multipart := strings.HasSuffix(strings.Trim(info.ETag, `"`), "-5"); multipart != tt.wantParts {
				t.Errorf("ETag %s: multipart = %v, want %v", info.ETag, multipart, tt.wantParts)
			}
			if !tt.wantParts && n.Load() != 1 {
				t.Errorf("a single-part upload cost %d requests", n.Load())
			}
			if tt.wantParts && n.Load() != 7 {
				t.Errorf("a 5-part upload cost %d requests, want 7", n.Load())
			}
			head, err := s.Head(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if head.ETag != info.ETag || head.Size != int64(len(tt.body)) || info.Size != head.Size {
				t.Errorf("Commit said %s/%d, Head says %s/%d", info.ETag, info.Size, head.ETag, head.Size)
			}
			if head.ContentType != "text/x-test" || head.Metadata["mtime"] != "42" {
				t.Errorf("Head: content type %q, metadata %v", head.ContentType, head.Metadata)
			}
			if got := gw.objectBytes(t, key); !bytes.Equal(got, tt.body) {
				t.Errorf("stored %d bytes differ from the %d written", len(got), len(tt.body))
			}
			if err := w.Abort(); err != nil {
				t.Errorf("Abort after Commit: %v", err)
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Errorf("Write after Commit succeeded")
			}
		})
	}
	if ups := gw.listUploads(t); len(ups) != 0 {
		t.Fatalf("uploads left behind: %v", ups)
	}
}

func TestWriterNeverStoresAPartialBody(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	const key = "victim"
	previous := randomBytes(1000, 7)
	if _, err := s.PutObject(ctx, key, previous, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	body := randomBytes(23*MiB, 2)
	errBoom := errors.New("client went away")

	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("Commit succeeded")
		}
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Commit error %v does not wrap ErrIncomplete", err)
		}
		if got := gw.objectBytes(t, key); !bytes.Equal(got, previous) {
			t.Fatalf("the previous object changed: %d bytes", len(got))
		}
		deadline := time.Now().Add(5 * time.Second)
		for ups := gw.listUploads(t); len(ups) != 0; ups = gw.listUploads(t) {
			if time.Now().After(deadline) {
				t.Fatalf("uploads left behind: %v", ups)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("a read error in the middle of a multipart body fails Commit", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: -1})
		_, err := w.ReadFrom(&failingReader{data: body[:17*MiB], err: errBoom})
		if !errors.Is(err, errBoom) || !errors.Is(err, ErrIncomplete) {
			t.Fatalf("ReadFrom = %v", err)
		}
		_, err = w.Commit()
		check(t, err)
		if !errors.Is(err, errBoom) {
			t.Fatalf("Commit error %v hides the read error", err)
		}
	})
	t.Run("a read error within the first part fails Commit", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: -1})
		_, _ = w.ReadFrom(&failingReader{data: body[:100], err: errBoom})
		_, err := w.Commit()
		check(t, err)
	})
	t.Run("a cancelled context in the middle of the upload fails Commit", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		w := s.NewWriter(cctx, key, WriteOptions{Size: int64(len(body))})
		if _, err := w.Write(body[:12*MiB]); err != nil {
			t.Fatal(err)
		}
		cancel()
		_, werr := w.Write(body[12*MiB:])
		if werr == nil {
			t.Fatal("Write after cancel succeeded")
		}
		_, err := w.Commit()
		check(t, err)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Commit error %v does not say the context was cancelled", err)
		}
	})
	t.Run("a cancelled context aborts the upload even without Commit", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		w := s.NewWriter(cctx, key, WriteOptions{Size: -1})
		if _, err := w.Write(body[:12*MiB]); err != nil {
			t.Fatal(err)
		}
		cancel()
		check(t, errors.Join(ErrIncomplete))
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a body shorter than its declared size fails Commit", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: int64(len(body))})
		if _, err := w.Write(body[:len(body)-1]); err != nil {
			t.Fatal(err)
		}
		_, err := w.Commit()
		check(t, err)
	})
	t.Run("a small body shorter than its declared size fails Commit", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: 10})
		if _, err := w.ReadFrom(bytes.NewReader([]byte("short"))); err != nil {
			t.Fatal(err)
		}
		_, err := w.Commit()
		check(t, err)
	})
	t.Run("a body longer than its declared size fails at once", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: 6 * MiB})
		_, err := w.ReadFrom(bytes.NewReader(body[:6*MiB+1]))
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("ReadFrom = %v", err)
		}
		_, err = w.Commit()
		check(t, err)
	})
	t.Run("Write past the declared size fails at once", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: 3})
		if _, err := w.Write([]byte("four")); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Write = %v", err)
		}
		_, err := w.Commit()
		check(t, err)
	})
	t.Run("an aborted writer stores nothing and refuses more calls", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: -1})
		if _, err := w.Write(body[:11*MiB]); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("second Abort: %v", err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("Write after Abort succeeded")
		}
		_, err := w.Commit()
		if err == nil {
			t.Fatal("Commit after Abort succeeded")
		}
		check(t, errors.Join(ErrIncomplete))
	})
	t.Run("a declared size above 5 TiB is too large at once", func(t *testing.T) {
		w := s.NewWriter(ctx, key, WriteOptions{Size: MaxObjectSize + 1})
		if _, err := w.Write([]byte("x")); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Write = %v", err)
		}
		_ = w.Abort()
	})
}

func TestWriterBoundsItsBuffers(t *testing.T) {
	s, gw := newTestStore(t, func(c *Config) { c.UploadConcurrency = 2 })
	w := s.NewWriter(context.Background(), "bounded", WriteOptions{Size: -1})
	body := randomBytes(31*MiB, 3)
	maxTokens := 0
	for off := 0; off < len(body); off += 256 << 10 {
		if _, err := w.Write(body[off:min(off+256<<10, len(body))]); err != nil {
			t.Fatal(err)
		}
		maxTokens = max(maxTokens, len(w.tokens))
	}
	if maxTokens > 2 {
		t.Fatalf("%d part buffers existed at once, want at most 2", maxTokens)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if len(w.tokens) != 0 {
		t.Fatalf("%d buffers still held after Commit", len(w.tokens))
	}
	if got := gw.objectBytes(t, "bounded"); !bytes.Equal(got, body) {
		t.Fatal("stored body differs")
	}
}

func TestWriterTooManyParts(t *testing.T) {
	s, gw := newTestStore(t, nil)
	w := s.NewWriter(context.Background(), "huge", WriteOptions{Size: -1})
	// Pretend 10,000 parts went up already: the next part must be refused.
	if _, err := w.Write(randomBytes(MinPartSize+1, 4)); err != nil {
		t.Fatal(err)
	}
	w.nextPart = MaxParts + 1
	_, err := w.Write(randomBytes(MinPartSize, 5))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write = %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Commit = %v", err)
	}
	if ups := gw.listUploads(t); len(ups) != 0 {
		t.Fatalf("uploads left behind: %v", ups)
	}
}

func TestWriterWithChecksumsWhenSupported(t *testing.T) {
	s, gw := newTestStore(t, func(c *Config) { c.Checksums = ChecksumsWhenSupported })
	for _, n := range []int{1000, 12 * MiB} {
		body := randomBytes(n, uint64(n))
		w := s.NewWriter(context.Background(), "crc", WriteOptions{Size: -1})
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got := gw.objectBytes(t, "crc"); !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: stored body differs", n)
		}
	}
	if err := s.Delete(context.Background(), []string{"crc", "other"}); err != nil {
		t.Fatalf("DeleteObjects with when_supported: %v", err)
	}
}
