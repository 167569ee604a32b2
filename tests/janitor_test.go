package tests

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/davgw/davgw/s3vfs"
)

// TestJanitorAbortsAbandonedUploads leaves multipart uploads behind on a
// real S3 server and runs the janitor sweep at several ages: only uploads
// under the prefix and older than the age are aborted.
func TestJanitorAbortsAbandonedUploads(t *testing.T) {
	for _, name := range []string{"versitygw", "seaweedfs"} {
		t.Run("on "+name, func(t *testing.T) {
			e := getEnv(t, name)
			prefix := "janitor-" + randHex(4) + "/"
			outside := "janitor-outside-" + randHex(4) + "/"
			for _, key := range []string{prefix + "a.bin", prefix + "sub/b.bin", outside + "c.bin"} {
				if _, err := e.b.s3.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{
					Bucket: &e.b.bucket, Key: aws.String(key)}); err != nil {
					t.Fatal(err)
				}
			}
			defer func() { // whatever the janitor left
				for _, p := range []string{prefix, outside} {
					ups, _ := e.store.ListUploads(context.Background(), p, 0)
					for _, u := range ups {
						_ = e.store.AbortUpload(context.Background(), u)
					}
				}
			}()
			tests := []struct {
				name        string
				now         time.Time
				wantAborted int
				wantLeft    int
			}{
				{name: "fresh uploads are left alone", now: time.Now(), wantAborted: 0, wantLeft: 2},
				{name: "uploads older than the age are aborted", now: time.Now().Add(25 * time.Hour), wantAborted: 2, wantLeft: 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					res, err := e.store.AbortAbandonedUploads(context.Background(), s3vfs.JanitorOptions{
						Prefix: prefix, MaxAge: 24 * time.Hour, Now: func() time.Time { return tt.now }})
					if err != nil {
						t.Fatal(err)
					}
					if len(res.Aborted) != tt.wantAborted {
						t.Fatalf("aborted %d uploads, want %d: %+v", len(res.Aborted), tt.wantAborted, res)
					}
					if left := e.b.openUploads(t, prefix); len(left) != tt.wantLeft {
						t.Fatalf("%d uploads left under the prefix, want %d: %v", len(left), tt.wantLeft, left)
					}
				})
			}
			if left := e.b.openUploads(t, outside); len(left) != 1 {
				t.Fatalf("the upload outside the prefix was touched: %v", left)
			}
		})
	}
}
