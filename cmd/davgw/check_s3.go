package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/s3vfs"
)

// probeCredentials prints where the credentials come from and whether they
// resolve (an IMDS or STS call when they are not static). It reports false
// when they do not, as every later probe would fail the same way.
func probeCredentials(ctx context.Context, c *checker, cfg *config.Config, store *s3vfs.Store) bool {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	keyID, expires, err := store.ResolveCredentials(pctx)
	if err != nil {
		c.fail("credentials resolve: "+store.CredentialSource(), err, credentialFix(cfg))
		return false
	}
	line := fmt.Sprintf("credentials resolve: %s (access key ID %s", store.CredentialSource(), keyID)
	if !expires.IsZero() {
		line += ", renewed by " + expires.UTC().Format(time.RFC3339)
	}
	c.pass("%s)", line)
	return true
}

// credentialFix is the fix printed when credentials do not resolve.
func credentialFix(cfg *config.Config) string {
	var fix string
	switch cfg.S3CredentialSource() {
	case "iam_lookup":
		fix = "run on an EC2 instance with an instance profile (role) attached, and IMDSv2 reachable: hop limit 2 in containers " +
			"(aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2); [s3].imds_endpoint overrides the address; " +
			"[s3].imds_v1_fallback = true only if the instance cannot do IMDSv2"
	case "default":
		fix = "give keys in [s3] or set up the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, ECS or an instance role)"
	default:
		fix = "check [s3].access_key_id and secret_access_key (or the keys in [s3].url)"
	}
	if cfg.S3.RoleARN != "" {
		fix += "; for role_arn: the role's trust policy must allow sts:AssumeRole by these credentials" +
			" (with the external_id if it asks for one), role_duration within the role's maximum, sts_endpoint reachable"
	}
	return fix
}

// probeMultipart creates a multipart upload on mpKey (by writing more than
// one part), lists it and aborts it: the calls of a large PUT and of the
// janitor.
func probeMultipart(ctx context.Context, c *checker, store *s3vfs.Store, mpKey string,
	probe func(string, func(context.Context) error, string) bool, bucketARN, objectARN string) {
	w := store.NewWriter(ctx, mpKey, s3vfs.WriteOptions{Size: -1})
	aborted := false
	defer func() {
		if !aborted {
			_ = w.Abort()
		}
	}()
	if !probe("multipart create and upload part (CreateMultipartUpload, UploadPart)", func(context.Context) error {
		chunk := make([]byte, 1<<20)
		for n := int64(0); n <= store.PartSize(); n += int64(len(chunk)) {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}, "grant s3:PutObject on "+objectARN) {
		return
	}
	probe("multipart list (ListMultipartUploads)", func(ctx context.Context) error {
		ups, err := store.ListUploads(ctx, mpKey, 0)
		if err != nil {
			return err
		}
		for _, u := range ups {
			if u.Key == mpKey {
				return nil
			}
		}
		return errors.New("the upload just created is not listed")
	}, "grant s3:ListBucketMultipartUploads on "+bucketARN+" (the janitor of abandoned uploads needs it)")
	probe("multipart abort (AbortMultipartUpload)", func(context.Context) error {
		aborted = true
		return w.Abort()
	}, "grant s3:AbortMultipartUpload on "+objectARN)
}
