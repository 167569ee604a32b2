package s3vfs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestJanitorNeverAbortsActiveUploads runs a sweep whose clock is a day
// ahead while a Writer and a multipart copy of this Store are in progress:
// they survive and complete; an idle upload started elsewhere is aborted.
func TestJanitorNeverAbortsActiveUploads(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	idle, err := gw.Admin.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: aws.String("p/idle")})
	if err != nil {
		t.Fatal(err)
	}
	body := randomBytes(17*MiB, 7)
	w := s.NewWriter(ctx, "p/active", WriteOptions{Size: -1})
	if _, err := w.Write(body[:11*MiB]); err != nil { // two parts flushed: the upload exists
		t.Fatal(err)
	}
	if n := len(gw.listUploads(t)); n != 2 {
		t.Fatalf("%d uploads in progress, want 2", n)
	}
	far := func() time.Time { return time.Now().Add(25 * 24 * time.Hour) }
	res, err := s.AbortAbandonedUploads(ctx, JanitorOptions{Prefix: "p/", MaxAge: time.Hour, Now: far})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Aborted) != 1 || res.Aborted[0].UploadID != aws.ToString(idle.UploadId) || res.Active != 1 {
		t.Fatalf("sweep = %+v, want only the idle upload aborted and one active", res)
	}
	if _, err := w.Write(body[11*MiB:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("the active upload was broken by the janitor: %v", err)
	}
	if got := gw.objectBytes(t, "p/active"); len(got) != len(body) {
		t.Fatalf("stored %d bytes, want %d", len(got), len(body))
	}
	if ups := gw.listUploads(t); len(ups) != 0 {
		t.Fatalf("uploads left: %v", ups)
	}
	s.untrackUpload("never-tracked") // harmless
	if len(s.active.ids) != 0 {
		t.Fatalf("active set not emptied: %v", s.active.ids)
	}
}

// TestJanitorMeasuresIdlenessFromTheNewestPart uses the server's clock:
// an upload created long ago whose last part is recent is left alone; once
// idle for MaxAge it is aborted.
func TestJanitorMeasuresIdlenessFromTheNewestPart(t *testing.T) {
	s, gw := newTestStore(t, nil)
	ctx := context.Background()
	up, err := gw.Admin.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: aws.String("q/slow")})
	if err != nil {
		t.Fatal(err)
	}
	const age = 2 * time.Second
	time.Sleep(age + 1200*time.Millisecond)
	if _, err := gw.Admin.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(testBucket), Key: aws.String("q/slow"),
		UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part one")}); err != nil {
		t.Fatal(err)
	}
	res, err := s.AbortAbandonedUploads(ctx, JanitorOptions{Prefix: "q/", MaxAge: age})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seen != 1 || len(res.Aborted) != 0 {
		t.Fatalf("an upload with a fresh part was aborted: %+v", res)
	}
	time.Sleep(age + 1200*time.Millisecond)
	res, err = s.AbortAbandonedUploads(ctx, JanitorOptions{Prefix: "q/", MaxAge: age})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Aborted) != 1 {
		t.Fatalf("the idle upload was not aborted: %+v", res)
	}
}

// TestUploadsStopsOnRepeatedMarkers: a store that answers every page with
// the same markers ends the listing with an error instead of looping.
func TestUploadsStopsOnRepeatedMarkers(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<ListMultipartUploadsResult><Bucket>bucket</Bucket><IsTruncated>true</IsTruncated>`+
			`<NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>`+
			`<Upload><Key>k</Key><UploadId>u</UploadId></Upload></ListMultipartUploadsResult>`)
	}))
	defer srv.Close()
	s, err := New(t.Context(), Config{Endpoint: srv.URL, Bucket: "bucket", PathStyle: true, AccessKeyID: "a", SecretAccessKey: "b"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var last error
	for _, err := range s.Uploads(t.Context(), "") {
		if err != nil {
			last = err
			break
		}
		n++
	}
	if last == nil || !errors.Is(last, ErrUnavailable) || calls.Load() != 2 || n != 2 {
		t.Fatalf("uploads=%d calls=%d err=%v; want 2, 2 and ErrUnavailable", n, calls.Load(), last)
	}
}
