package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/davgw/davgw/s3vfs"
)

// stsStore builds a Store that assumes the davgw role with the admin keys,
// sending S3 calls through the counting proxy and S3 and STS calls through
// the forward proxy fp (nil = none).
func stsStore(tb testing.TB, srv *stsServer, fp *countingForwardProxy, externalID string) *s3vfs.Store {
	tb.Helper()
	cfg := stsConfig(srv, externalID)
	if fp != nil {
		cfg.Proxy = fp.URL
	}
	return newStore(tb, cfg)
}

// stsConfig is the configuration of a Store that assumes the davgw role
// with the admin keys and externalID, its S3 calls through the counting
// proxy.
func stsConfig(srv *stsServer, externalID string) s3vfs.Config {
	return s3vfs.Config{
		Endpoint:        srv.proxy.URL,
		Region:          "us-east-1",
		Bucket:          stsBucket,
		PathStyle:       true,
		AccessKeyID:     stsAdminKey,
		SecretAccessKey: stsAdminSecret,
		RoleARN:         stsRoleARN,
		ExternalID:      externalID,
		RoleSessionName: "davgw-test",
		RoleDuration:    s3vfs.MinRoleDuration, // SeaweedFS shortens it to stsSessionLife
		STSEndpoint:     srv.endpoint,
		PartSize:        gatewayPartSize,
	}
}

// TestAssumeRoleKeepsWorkingAcrossACredentialRefresh runs the gateway
// through a role assumed with SeaweedFS's STS, whose sessions last
// stsSessionLife, for longer than two sessions, and counts failed requests
// and AssumeRole calls: the credentials must be renewed before they expire.
func TestAssumeRoleKeepsWorkingAcrossACredentialRefresh(t *testing.T) {
	srv := getSTSServer(t)
	fp := newForwardProxy(t)
	store := stsStore(t, srv, fp, "")
	e := gatewayOver(t, nil, store)

	if src := store.CredentialSource(); src == "" {
		t.Fatal("no credential source")
	}
	keyID, expires, err := store.ResolveCredentials(t.Context())
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	if keyID == stsAdminKey {
		t.Fatal("the store uses the base keys, not the assumed role's")
	}
	if life := time.Until(expires); life <= 0 || life > stsSessionLife {
		t.Fatalf("the assumed credentials are renewed in %v, want within the session life %v", life, stsSessionLife)
	}
	first := assumeDirect(t, srv)

	mark := srv.proxy.Mark()
	stsHost := srv.endpoint[len("http://"):]
	start := time.Now()
	requests, failures, last := 0, 0, ""
	deadline := start.Add(2*stsSessionLife + 2*time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		n, f, l := roundTrip(e, fmt.Sprintf("/dav/refresh-%d/", i%4), 1024)
		requests, failures = requests+n, failures+f
		if l != "" {
			last = l
		}
		time.Sleep(50 * time.Millisecond)
	}
	calls := srv.proxy.Since(mark)
	denied := 0
	for _, c := range calls {
		if c.Status == http.StatusForbidden || c.Status == http.StatusBadRequest {
			denied++
		}
	}
	assumes := fp.count(stsHost)
	report(t, "AssumeRole refresh (SeaweedFS STS, sessions of %v, renewed a fifth early): %d WebDAV requests over %v, %d failed, %d S3 calls, %d refused by S3, %d AssumeRole calls",
		stsSessionLife, requests, time.Since(start).Round(time.Second), failures, len(calls), denied, assumes)
	if failures > 0 || denied > 0 {
		t.Errorf("%d failed requests and %d S3 refusals across the refresh; last: %s", failures, denied, last)
	}
	if assumes < 3 {
		t.Errorf("%d AssumeRole calls through the proxy in %v, want at least 3 (sessions of %v)", assumes, time.Since(start), stsSessionLife)
	}

	// The test means something only if expired session credentials are
	// refused: the first session's are by now.
	direct := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(first.AccessKeyID, first.SecretAccessKey, first.SessionToken),
		HTTPClient:  &http.Client{Transport: &http.Transport{Proxy: nil}},
	})
	if _, err := direct.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(stsBucket), Prefix: aws.String(stsPrefix)}); err == nil {
		t.Error("SeaweedFS still accepts the first, expired session: the refresh was not put to the test")
	}
}

// assumeDirect assumes the role with the SDK, outside the gateway: a
// session that expires during the test.
func assumeDirect(tb testing.TB, srv *stsServer) aws.Credentials {
	tb.Helper()
	client := sts.New(sts.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(stsAdminKey, stsAdminSecret, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{Proxy: nil}},
	})
	c, err := stscreds.NewAssumeRoleProvider(client, stsRoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.Duration = s3vfs.MinRoleDuration
	}).Retrieve(tb.Context())
	if err != nil {
		tb.Fatalf("AssumeRole: %v", err)
	}
	return c
}

// TestAssumeRoleRefusals checks that STS refusals surface as credential
// errors naming the role, never the secret.
func TestAssumeRoleRefusals(t *testing.T) {
	srv := getSTSServer(t)
	tests := []struct {
		name string
		cfg  func(*s3vfs.Config)
	}{
		{name: "an unknown role is refused", cfg: func(c *s3vfs.Config) { c.RoleARN = "arn:aws:iam::000000000000:role/nobody" }},
		{name: "wrong base keys are refused", cfg: func(c *s3vfs.Config) { c.SecretAccessKey = "wrong-secret-123" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s3vfs.Config{
				Endpoint: srv.proxy.URL, Region: "us-east-1", Bucket: stsBucket, PathStyle: true,
				AccessKeyID: stsAdminKey, SecretAccessKey: stsAdminSecret, RoleARN: stsRoleARN, STSEndpoint: srv.endpoint,
			}
			tt.cfg(&cfg)
			store, err := s3vfs.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = store.ResolveCredentials(t.Context())
			if err == nil {
				t.Fatal("credentials resolved")
			}
			if msg := err.Error(); containsAny(msg, cfg.SecretAccessKey, stsAdminSecret) {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if len(sub) >= 6 && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
