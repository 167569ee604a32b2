package config

import (
	"strings"
	"testing"
)

func TestPathStyleIsTriState(t *testing.T) {
	tests := []struct {
		doc            string
		wantPathStyle  bool
		wantExplicitly bool
	}{
		{doc: "[s3]\nbucket = \"bkt\"\nendpoint = \"https://rgw.example.com\"\nprovider = \"ceph\"\n", wantPathStyle: false, wantExplicitly: false},
		{doc: "[s3]\nbucket = \"bkt\"\nendpoint = \"https://rgw.example.com\"\nprovider = \"ceph\"\npath_style = false\n", wantPathStyle: false, wantExplicitly: true},
		{doc: "[s3]\nbucket = \"bkt\"\npath_style = true\n", wantPathStyle: true, wantExplicitly: true},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.doc), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		s := c.S3Config()
		if s.PathStyle != tt.wantPathStyle || s.PathStyleSet != tt.wantExplicitly {
			t.Errorf("%q: PathStyle %v set %v, want %v %v", tt.doc, s.PathStyle, s.PathStyleSet, tt.wantPathStyle, tt.wantExplicitly)
		}
	}
}

func TestUploadMemory(t *testing.T) {
	c, err := Parse([]byte("[s3]\nbucket = \"bkt\"\nupload_memory = \"256MiB\"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.S3Config().UploadMemory; got != 256<<20 {
		t.Fatalf("UploadMemory = %d", got)
	}
	c, err = Parse([]byte("[s3]\nbucket = \"bkt\"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.S3Config().UploadMemory; got != 0 {
		t.Fatalf("UploadMemory = %d, want 0 (the s3vfs default)", got)
	}
	_, err = Parse([]byte("[s3]\nbucket = \"bkt\"\npart_size = \"64MiB\"\nupload_memory = \"32MiB\"\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "upload_memory") {
		t.Fatalf("upload_memory below part_size: %v", err)
	}
}
