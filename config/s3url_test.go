package config

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseS3URL(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want S3URL
		err  bool
	}{
		{
			name: "a custom host with a port gives an HTTPS endpoint and path style",
			raw:  "s3://AKID:secret@minio.example.com:9000/bucket/",
			want: S3URL{Endpoint: "https://minio.example.com:9000", PathStyle: true, Bucket: "bucket", AccessKeyID: "AKID", SecretAccessKey: "secret"},
		},
		{
			name: "s3+http gives a plain HTTP endpoint",
			raw:  "s3+http://AKID:secret@127.0.0.1:7070/b/",
			want: S3URL{Endpoint: "http://127.0.0.1:7070", PathStyle: true, Bucket: "b", AccessKeyID: "AKID", SecretAccessKey: "secret"},
		},
		{
			name: "a percent-encoded secret with / + @ : is decoded",
			raw:  "s3://AKID:a%2Fb%2Bc%40d%3Ae%25f@host/bucket/",
			want: S3URL{Endpoint: "https://host", PathStyle: true, Bucket: "bucket", AccessKeyID: "AKID", SecretAccessKey: "a/b+c@d:e%f"},
		},
		{
			name: "the path after the bucket is the prefix",
			raw:  "s3://K:S@host/bucket/team/docs/",
			want: S3URL{Endpoint: "https://host", PathStyle: true, Bucket: "bucket", Prefix: "team/docs/", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "a prefix without a trailing slash gets one",
			raw:  "s3://K:S@host/bucket/team",
			want: S3URL{Endpoint: "https://host", PathStyle: true, Bucket: "bucket", Prefix: "team/", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "the AWS global host means the default AWS endpoint",
			raw:  "s3://K:S@s3.amazonaws.com/bucket/",
			want: S3URL{Bucket: "bucket", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "a regional AWS host gives the region",
			raw:  "s3://K:S@s3.eu-west-1.amazonaws.com/bucket/",
			want: S3URL{Region: "eu-west-1", Bucket: "bucket", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "the legacy dashed regional AWS host gives the region",
			raw:  "s3://K:S@s3-eu-west-1.amazonaws.com/bucket/",
			want: S3URL{Region: "eu-west-1", Bucket: "bucket", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "a virtual-host style AWS host gives the bucket, the region and the path as prefix",
			raw:  "s3://K:S@my.bucket.s3.eu-central-1.amazonaws.com/team/docs/",
			want: S3URL{Region: "eu-central-1", Bucket: "my.bucket", Prefix: "team/docs/", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "a virtual-host style global AWS host with an empty path has no prefix",
			raw:  "s3://K:S@bucket.s3.amazonaws.com/",
			want: S3URL{Bucket: "bucket", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "a dual-stack AWS host is kept as the endpoint with virtual-host addressing",
			raw:  "s3://K:S@s3.dualstack.us-west-2.amazonaws.com/bucket/",
			want: S3URL{Endpoint: "https://s3.dualstack.us-west-2.amazonaws.com", Bucket: "bucket", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "an AWS host over s3+http is a custom plain-HTTP endpoint",
			raw:  "s3+http://K:S@s3.amazonaws.com/bucket/",
			want: S3URL{Endpoint: "http://s3.amazonaws.com", PathStyle: true, Bucket: "bucket", AccessKeyID: "K", SecretAccessKey: "S"},
		},
		{
			name: "the instance-role magic keys are kept as written",
			raw:  "s3://iam_lookup:lookup@s3.us-east-2.amazonaws.com/bucket/gw/",
			want: S3URL{Region: "us-east-2", Bucket: "bucket", Prefix: "gw/", AccessKeyID: "iam_lookup", SecretAccessKey: "lookup"},
		},
		{name: "a dot dot prefix on a virtual-host style host is refused", raw: "s3://K:S@bucket.s3.amazonaws.com/../x/", err: true},
		{
			name: "a URL without credentials is allowed",
			raw:  "s3://host/bucket/",
			want: S3URL{Endpoint: "https://host", PathStyle: true, Bucket: "bucket"},
		},
		{name: "another scheme is refused", raw: "https://K:S@host/bucket/", err: true},
		{name: "a missing bucket is refused", raw: "s3://K:S@host/", err: true},
		{name: "a missing path is refused", raw: "s3://K:S@host", err: true},
		{name: "a missing host is refused", raw: "s3://K:S@/bucket/", err: true},
		{name: "an unencoded slash in the secret is refused", raw: "s3://K:a/b@host/bucket/", err: true},
		{name: "a key without a secret is refused", raw: "s3://K@host/bucket/", err: true},
		{name: "a bad escape is refused", raw: "s3://K:%zz@host/bucket/", err: true},
		{name: "dot dot in the prefix is refused", raw: "s3://K:S@host/bucket/../x/", err: true},
		{name: "a query is refused", raw: "s3://K:S@host/bucket/?x=1", err: true},
		{name: "a bad port is refused", raw: "s3://K:S@host:99999/bucket/", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseS3URL(tt.raw)
			if tt.err {
				if err == nil {
					t.Fatalf("ParseS3URL succeeded: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.scheme, got.host = "", ""
			if *got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestS3URLStringRedactsTheSecret(t *testing.T) {
	u, err := ParseS3URL("s3://AKID:p%2Fa%40ss@host:9000/bucket/pre/fix/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.String(), "s3://AKID:***@host:9000/bucket/pre/fix/"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got := RedactS3URL("s3://AKID:secret@"); strings.Contains(got, "secret") {
		t.Fatalf("RedactS3URL leaks: %q", got)
	}
}

func FuzzParseS3URL(f *testing.F) {
	for _, seed := range []struct{ key, secret, rest string }{
		{"AKID", "secret", "host/bucket/"},
		{"AK", "a/b+c@d:e", "127.0.0.1:9000/b/prefix/"},
		{"K", "%%%", "s3.eu-west-1.amazonaws.com/bucket/x"},
		{"", "", "host/"},
		{"K", "S", "bucket.s3.eu-west-1.amazonaws.com/pre/"},
		{"iam_lookup", "lookup", "s3-us-west-2.amazonaws.com/b/"},
	} {
		f.Add(seed.key, seed.secret, seed.rest, true)
	}
	f.Fuzz(func(t *testing.T, key, secret, rest string, encode bool) {
		s := secret
		if encode {
			s = url.PathEscape(secret)
		}
		raw := "s3://" + key + ":" + s + "@" + rest
		u, err := ParseS3URL(raw)
		if err != nil {
			// Errors are fixed values: no part of the input can be in them.
			if !slices.Contains(s3URLErrors, err) {
				t.Fatalf("error is not one of the fixed errors: %v", err)
			}
			return
		}
		// String() must not depend on the secret at all.
		other := *u
		other.SecretAccessKey = "different"
		if u.String() != other.String() {
			t.Fatalf("String() depends on the secret: %s", u.String())
		}
		if secret != "" && u.SecretAccessKey != "" && len(u.SecretAccessKey) >= 8 && strings.Contains(u.String(), u.SecretAccessKey) &&
			!strings.Contains(u.AccessKeyID+u.host+u.Bucket+u.Prefix, u.SecretAccessKey) {
			t.Fatalf("String() shows the secret: %s", u.String())
		}
		if u.Bucket == "" {
			t.Fatal("parsed without a bucket")
		}
		if u.Prefix != "" && !strings.HasSuffix(u.Prefix, "/") {
			t.Fatalf("prefix %q does not end in /", u.Prefix)
		}
	})
}
