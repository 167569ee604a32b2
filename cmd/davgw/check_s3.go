package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// probeCredentials prints where the credentials come from and whether they
// resolve (an IMDS or STS call when they are not static). It reports false
// when they do not, as every later probe would fail the same way.
func probeCredentials(ctx context.Context, c *checker, cfg s3vfs.Config, store *s3vfs.Store) bool {
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
func credentialFix(cfg s3vfs.Config) string {
	var fix string
	switch cfg.Credentials {
	case "iam_lookup":
		fix = "run on an EC2 instance with an instance profile (role) attached, and IMDSv2 reachable: hop limit 2 in containers " +
			"(aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2); [s3].imds_endpoint overrides the address; " +
			"[s3].imds_v1_fallback = true only if the instance cannot do IMDSv2"
	case "default":
		fix = "give keys in [s3] or set up the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, ECS or an instance role)"
	default:
		fix = "check [s3].access_key_id and secret_access_key (or the keys in [s3].url)"
	}
	if cfg.RoleARN != "" {
		fix += "; for role_arn: the role's trust policy must allow sts:AssumeRole by these credentials" +
			" (with the external_id if it asks for one), role_duration within the role's maximum, sts_endpoint reachable"
	}
	return fix
}

// probeMultipart calls each operation of a large PUT and of the janitor
// on its own, and reports each: CreateMultipartUpload, UploadPart,
// ListMultipartUploads, ListParts and AbortMultipartUpload. The upload is
// aborted whatever happens.
func probeMultipart(ctx context.Context, c *checker, cfg s3vfs.Config, store *s3vfs.Store, mpKey string,
	probe func(string, func(context.Context) error, string) bool, bucketARN, objectARN string) {
	var up s3vfs.Upload
	if !probe("multipart create (CreateMultipartUpload)", func(ctx context.Context) error {
		var err error
		up, err = store.CreateUpload(ctx, mpKey)
		return err
	}, "grant s3:PutObject on "+objectARN+objectOptionsFix(cfg, true)) {
		return
	}
	aborted := false
	defer func() {
		if !aborted {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
			defer cancel()
			_ = store.AbortUpload(actx, up)
		}
	}()
	probe("multipart upload part (UploadPart)", func(ctx context.Context) error {
		return store.UploadPart(ctx, up, 1, []byte("davgw check multipart\n"))
	}, "grant s3:PutObject on "+objectARN)
	probe("multipart list (ListMultipartUploads)", func(ctx context.Context) error {
		for u, err := range store.Uploads(ctx, mpKey) {
			if err != nil {
				return err
			}
			if u.UploadID == up.UploadID {
				return nil
			}
		}
		return errors.New("the upload just created is not listed")
	}, "grant s3:ListBucketMultipartUploads on "+bucketARN+" (the janitor of abandoned uploads needs it)")
	probe("multipart list parts (ListParts)", func(ctx context.Context) error {
		_, err := store.LastActivity(ctx, up)
		return err
	}, "grant s3:ListMultipartUploadParts on "+objectARN+" (the janitor needs it)")
	probe("multipart abort (AbortMultipartUpload)", func(ctx context.Context) error {
		aborted = true
		return store.AbortUpload(ctx, up)
	}, "grant s3:AbortMultipartUpload on "+objectARN)
}

// objectOptionsFix is what a refused write (write) or read may also need
// because of [s3]'s object options: the bucket policy may ask for
// encryption, KMS keys and ACLs need permissions of their own.
func objectOptionsFix(s s3vfs.Config, write bool) string {
	customer := s.SSECustomerKey != "" || s.SSECustomerKeyFile != ""
	var fix string
	if s.SSE == s3vfs.SSEKMS {
		key := "the aws/s3 key"
		if s.SSEKMSKeyID != "" {
			key = s.SSEKMSKeyID
		}
		fix += "; with sse = \"aws:kms\" the credentials need kms:GenerateDataKey and kms:Decrypt on " + key + " (its key policy too)"
	}
	if !write {
		if customer {
			fix += "; an object written with another SSE-C key (or none) cannot be read with this one"
		}
		return fix
	}
	if s.ACL != "" {
		fix += "; with acl the credentials need s3:PutObjectAcl, and a bucket with ACLs disabled (Object Ownership \"bucket owner enforced\") accepts only bucket-owner-full-control"
	}
	if s.SSE == "" && !customer {
		fix += "; a bucket policy that requires encryption (x-amz-server-side-encryption) needs [s3].sse"
	}
	return fix
}
