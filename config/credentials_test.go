package config

import (
	"strings"
	"testing"
	"time"
)

func TestS3CredentialSettings(t *testing.T) {
	tests := []struct {
		name                 string
		doc                  string
		wantSource, wantKey  string
		wantRegion           string
		wantRoleDuration     time.Duration
		wantAbandonedUploads time.Duration
	}{
		{name: "keys in the URL are static", doc: `url = "s3://K:S@host/bkt/"`, wantSource: "static", wantKey: "K", wantRegion: "us-east-1", wantAbandonedUploads: 24 * time.Hour},
		{name: "the CrushFTP iam_lookup URL is the instance role with no keys and the region from the host",
			doc: `url = "s3://iam_lookup:lookup@s3.eu-north-1.amazonaws.com/bkt/"`, wantSource: "iam_lookup", wantRegion: "eu-north-1", wantAbandonedUploads: 24 * time.Hour},
		{name: "iam_lookup without a region leaves the region to IMDS",
			doc: "bucket = \"bkt\"\naccess_key_id = \"iam_lookup\"\nsecret_access_key = \"lookup\"", wantSource: "iam_lookup", wantRegion: "", wantAbandonedUploads: 24 * time.Hour},
		{name: "no keys is the SDK default chain", doc: `bucket = "bkt"`, wantSource: "default", wantRegion: "us-east-1", wantAbandonedUploads: 24 * time.Hour},
		{name: "credentials = default drops the keys", doc: "url = \"s3://K:S@host/bkt/\"\ncredentials = \"default\"", wantSource: "default", wantRegion: "us-east-1", wantAbandonedUploads: 24 * time.Hour},
		{name: "a role gets its duration", doc: "bucket = \"bkt\"\nrole_arn = \"arn:aws:iam::1:role/r\"\nrole_duration = \"30m\"\nabandoned_upload_age = \"0\"",
			wantSource: "default", wantRegion: "us-east-1", wantRoleDuration: 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte("[s3]\n"+tt.doc+"\n"), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			s := c.S3Config()
			if s.Credentials != tt.wantSource || s.AccessKeyID != tt.wantKey || s.Region != tt.wantRegion ||
				s.RoleDuration != tt.wantRoleDuration || c.AbandonedUploadAge() != tt.wantAbandonedUploads {
				t.Fatalf("got source %q key %q region %q role duration %v janitor %v", s.Credentials, s.AccessKeyID, s.Region,
					s.RoleDuration, c.AbandonedUploadAge())
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("s3vfs rejects it: %v", err)
			}
		})
	}
}

func TestS3CredentialProblems(t *testing.T) {
	tests := []struct {
		name, doc, key string
	}{
		{name: "iam_lookup with another secret is refused", doc: "access_key_id = \"iam_lookup\"\nsecret_access_key = \"x\"", key: "s3.secret_access_key"},
		{name: "imds settings with static keys are refused", doc: "access_key_id = \"K\"\nsecret_access_key = \"S\"\nimds_v1_fallback = true", key: "s3.imds_endpoint"},
		{name: "an external id without a role is refused", doc: "external_id = \"x\"", key: "s3.role_arn"},
		{name: "an unknown provider is refused", doc: "provider = \"azure\"", key: "s3.provider"},
		{name: "a non-AWS provider needs an endpoint", doc: "provider = \"b2\"", key: "s3.endpoint"},
		{name: "a janitor age under an hour is refused", doc: "abandoned_upload_age = \"10m\"", key: "s3.abandoned_upload_age"},
		{name: "a role duration under 15 minutes is refused", doc: "role_arn = \"arn:aws:iam::1:role/r\"\nrole_duration = \"5m\"", key: "s3.role_duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("[s3]\nbucket = \"bkt\"\n"+tt.doc+"\n"), env(nil))
			for _, p := range problems(err) {
				if p.Key == tt.key {
					if strings.Contains(p.Error(), "lookupx") {
						t.Fatalf("the problem quotes a secret: %v", p)
					}
					return
				}
			}
			t.Fatalf("no problem for %s; got %v", tt.key, err)
		})
	}
}
