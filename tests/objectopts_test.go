package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/davgw/davgw/s3vfs"
)

// The S3 operations that create an object carry SSE, the KMS key, the
// storage class and the ACL; those that read or write an object's bytes
// carry the SSE-C key; copies carry it for their source too. Every other
// operation carries none of these headers.
var (
	creatingOps = []string{"PutObject", "CreateMultipartUpload", "CopyObject"}
	customerOps = []string{"PutObject", "CreateMultipartUpload", "CopyObject", "UploadPart", "UploadPartCopy",
		"CompleteMultipartUpload", "GetObject", "HeadObject", "ListParts"}
	copyOps = []string{"CopyObject", "UploadPartCopy"}
)

// wantOptionHeaders are the object-option headers a call of op must carry
// with cfg, exactly.
func wantOptionHeaders(op string, cfg s3vfs.Config, customerKey []byte) map[string]string {
	want := map[string]string{}
	if slices.Contains(creatingOps, op) {
		set := func(h, v string) {
			if v != "" {
				want[h] = v
			}
		}
		set("X-Amz-Server-Side-Encryption", cfg.SSE)
		set("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", cfg.SSEKMSKeyID)
		set("X-Amz-Storage-Class", cfg.StorageClass)
		set("X-Amz-Acl", cfg.ACL)
	}
	if customerKey != nil {
		sum := md5.Sum(customerKey)
		key, keyMD5 := base64.StdEncoding.EncodeToString(customerKey), base64.StdEncoding.EncodeToString(sum[:])
		if slices.Contains(customerOps, op) {
			want["X-Amz-Server-Side-Encryption-Customer-Algorithm"] = "AES256"
			want["X-Amz-Server-Side-Encryption-Customer-Key"] = key
			want["X-Amz-Server-Side-Encryption-Customer-Key-Md5"] = keyMD5
		}
		if slices.Contains(copyOps, op) {
			want["X-Amz-Copy-Source-Server-Side-Encryption-Customer-Algorithm"] = "AES256"
			want["X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key"] = key
			want["X-Amz-Copy-Source-Server-Side-Encryption-Customer-Key-Md5"] = keyMD5
		}
	}
	return want
}

// optionsEnv starts a gateway over b with the store configuration cfg,
// stopped when the test ends.
func optionsEnv(t *testing.T, b *backend, cfg s3vfs.Config) *davEnv {
	t.Helper()
	e, err := newDavEnvConfig(staticAuth(t), b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.srv.Close()
		_ = e.gw.Close(context.Background())
	})
	return e
}

// redactedHeaders shows recorded headers with any SSE-C key hidden.
func redactedHeaders(h map[string]string) string {
	keys := slices.Sorted(maps.Keys(h))
	var b strings.Builder
	for _, k := range keys {
		v := h[k]
		if strings.HasSuffix(k, "-Customer-Key") {
			v = fmt.Sprintf("(%d characters)", len(v))
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}

// TestObjectOptionsOnEveryS3Call runs every WebDAV write and read path
// through a gateway with each kind of object options, on SeaweedFS (the
// server here with SSE-S3, SSE-KMS and SSE-C), asserts the exact option
// headers of every S3 call the recording proxy saw, and checks S3's own
// view of the objects.
func TestObjectOptionsOnEveryS3Call(t *testing.T) {
	b := getBackend(t, "seaweedfs")
	customerKey := []byte("davgw-test-sse-c-key-0123456789!")
	customerKeyB64 := base64.StdEncoding.EncodeToString(customerKey)
	cases := []struct {
		name string
		edit func(*s3vfs.Config)
		key  []byte // the SSE-C key, nil for none
		// check looks at an object as S3 keeps it (a direct HeadObject).
		check func(t *testing.T, head *s3.HeadObjectOutput)
	}{
		{
			name: "SSE-KMS with a key, storage class and ACL are sent on every write",
			edit: func(c *s3vfs.Config) {
				c.SSE, c.SSEKMSKeyID, c.StorageClass, c.ACL = "aws:kms", "davgw-test-key", "STANDARD_IA", "bucket-owner-full-control"
			},
			check: func(t *testing.T, head *s3.HeadObjectOutput) {
				if head.ServerSideEncryption != "aws:kms" || !strings.Contains(aws.ToString(head.SSEKMSKeyId), "davgw-test-key") {
					t.Errorf("S3 keeps SSE %q key %q, want aws:kms with davgw-test-key", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId))
				}
			},
		},
		{
			name: "SSE-S3 is sent on every write",
			edit: func(c *s3vfs.Config) { c.SSE = "AES256" },
			check: func(t *testing.T, head *s3.HeadObjectOutput) {
				if head.ServerSideEncryption != "AES256" {
					t.Errorf("S3 keeps SSE %q, want AES256", head.ServerSideEncryption)
				}
			},
		},
		{
			name: "an SSE-C key is sent on every read and write",
			edit: func(c *s3vfs.Config) { c.SSECustomerKey, c.StorageClass = customerKeyB64, "STANDARD_IA" },
			key:  customerKey,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := storeConfig(b, b.proxy.URL, gatewayPartSize, 2)
			tc.edit(&cfg)
			e := optionsEnv(t, b, cfg)
			slug := "objopts-" + randHex(4)
			keyPrefix, dir := "users/alice/"+slug+"/", "/dav/"+slug+"/"
			mark := b.proxy.Mark()

			small, big := []byte("small file, encrypted\n"), randBytes(12<<20)
			expect(t, "MKCOL dir", e.alice(t, "MKCOL", dir, nil, nil), http.StatusCreated)
			expect(t, "MKCOL sub", e.alice(t, "MKCOL", dir+"sub/", nil, nil), http.StatusCreated)
			expect(t, "PUT a.txt", e.alice(t, http.MethodPut, dir+"a.txt", map[string]string{"X-OC-Mtime": "1700000000"}, small), http.StatusCreated)
			expect(t, "PUT big.bin (multipart)", e.alice(t, http.MethodPut, dir+"big.bin", nil, big), http.StatusCreated)
			expect(t, "COPY a.txt", e.alice(t, "COPY", dir+"a.txt", map[string]string{"Destination": e.URL + dir + "sub/b.txt"}, nil), http.StatusCreated)
			expect(t, "COPY big.bin", e.alice(t, "COPY", dir+"big.bin", map[string]string{"Destination": e.URL + dir + "big2.bin"}, nil), http.StatusCreated)
			expect(t, "MOVE b.txt", e.alice(t, "MOVE", dir+"sub/b.txt", map[string]string{"Destination": e.URL + dir + "c.txt"}, nil), http.StatusCreated)
			patch := `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:davgw-test"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>`
			expect(t, "PROPPATCH a.txt", e.alice(t, "PROPPATCH", dir+"a.txt", nil, []byte(patch)), http.StatusMultiStatus)
			if err := e.gw.WritePending(context.Background()); err != nil { // the kept times' index
				t.Fatal(err)
			}
			r := e.alice(t, http.MethodGet, dir+"a.txt", nil, nil)
			expect(t, "GET a.txt", r, http.StatusOK)
			if !bytes.Equal(r.Body, small) {
				t.Errorf("GET a.txt through the gateway: %q", r.Body)
			}
			expect(t, "HEAD a.txt", e.alice(t, http.MethodHead, dir+"a.txt", nil, nil), http.StatusOK)
			r = e.alice(t, http.MethodGet, dir+"big.bin", map[string]string{"Range": "bytes=6291456-6291555"}, nil)
			expect(t, "Range GET big.bin", r, http.StatusPartialContent)
			if !bytes.Equal(r.Body, big[6291456:6291556]) {
				t.Error("Range GET big.bin: wrong bytes")
			}
			for _, name := range []string{"c.txt", "big2.bin"} {
				r = e.alice(t, http.MethodGet, dir+name, nil, nil)
				expect(t, "GET "+name, r, http.StatusOK)
				if want := map[string][]byte{"c.txt": small, "big2.bin": big}[name]; !bytes.Equal(r.Body, want) {
					t.Errorf("GET %s: wrong bytes", name)
				}
			}
			expect(t, "PROPFIND dir", e.alice(t, "PROPFIND", dir, map[string]string{"Depth": "1"}, nil), http.StatusMultiStatus)
			// oc:checksums offers the ETag as an MD5 only where it is one:
			// not with SSE-KMS or SSE-C, whose ETags only look like MD5s.
			askSums := `<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><oc:checksums/></d:prop></d:propfind>`
			r = e.alice(t, "PROPFIND", dir+"a.txt", map[string]string{"Depth": "0"}, []byte(askSums))
			expect(t, "PROPFIND a.txt", r, http.StatusMultiStatus)
			sum := md5.Sum(small)
			wantMD5 := cfg.SSE != "aws:kms" && tc.key == nil
			if got := bytes.Contains(r.Body, []byte(fmt.Sprintf("MD5:%x", sum))); got != wantMD5 {
				t.Errorf("oc:checksums offers the MD5 of a.txt: %v, want %v:\n%s", got, wantMD5, r.Body)
			}
			if !wantMD5 && bytes.Contains(r.Body, []byte("MD5:")) {
				t.Errorf("oc:checksums offers an MD5 with SSE-KMS or SSE-C:\n%s", r.Body)
			}

			calls := b.proxy.SinceUnder(mark, keyPrefix)
			seen := map[string]int{}
			var indexWrites, rangeGets int
			for _, c := range calls {
				if c.Key == "" {
					continue // bucket-level: listings, DeleteObjects
				}
				op := c.Op()
				seen[op]++
				want := wantOptionHeaders(op, cfg, tc.key)
				got := c.Options
				if got == nil {
					got = map[string]string{}
				}
				if !maps.Equal(got, want) {
					t.Errorf("%s %s (status %d) sent%s\n\twant%s", op, c.Key, c.Status, redactedHeaders(got), redactedHeaders(want))
				}
				if op == "PutObject" && strings.HasSuffix(c.Key, ".davgw-index.json") {
					indexWrites++
				}
				if op == "GetObject" && c.Range != "" {
					rangeGets++
				}
				if c.Status >= 300 && c.Status != http.StatusNotFound {
					t.Errorf("%s %s answered %d", op, c.Key, c.Status)
				}
			}
			for _, op := range []string{"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject", "GetObject", "HeadObject"} {
				if seen[op] == 0 {
					t.Errorf("no %s call: the test did not exercise that path (calls: %v)", op, sortedOps(seen))
				}
			}
			if indexWrites == 0 || rangeGets == 0 {
				t.Errorf("%d index writes and %d ranged GETs, want both: %v", indexWrites, rangeGets, sortedOps(seen))
			}

			// S3's own view: what it keeps, and (SSE-C) that the bytes
			// cannot be read without the key.
			if cfg.StorageClass != "" {
				checkStorageClass(t, b, keyPrefix, cfg.StorageClass)
			}
			for _, name := range []string{"a.txt", "big.bin", "big2.bin", "c.txt", "sub/", ".davgw-index.json"} {
				in := &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(keyPrefix + name)}
				if tc.key != nil {
					checkNeedsCustomerKey(t, b, keyPrefix+name)
					sum := md5.Sum(tc.key)
					in.SSECustomerAlgorithm, in.SSECustomerKey = aws.String("AES256"), aws.String(customerKeyB64)
					in.SSECustomerKeyMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
				}
				head, err := b.s3.HeadObject(context.Background(), in)
				if err != nil {
					t.Errorf("HeadObject %s with the options: %v", name, err)
					continue
				}
				if tc.check != nil {
					tc.check(t, head)
				}
				if tc.key != nil && aws.ToString(head.SSECustomerAlgorithm) != "AES256" {
					t.Errorf("%s: S3 does not report SSE-C (algorithm %q)", name, aws.ToString(head.SSECustomerAlgorithm))
				}
			}
		})
	}
}

// checkStorageClass asserts that every object under prefix has the
// storage class class, as the listing shows it (SeaweedFS's HEAD does not).
func checkStorageClass(t *testing.T, b *backend, prefix, class string) {
	t.Helper()
	out, err := b.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) < 6 {
		t.Errorf("%d objects under %s, want at least 6", len(out.Contents), prefix)
	}
	for _, o := range out.Contents {
		if string(o.StorageClass) != class {
			t.Errorf("%s has storage class %q, want %q", aws.ToString(o.Key), o.StorageClass, class)
		}
	}
}

// checkNeedsCustomerKey asserts that S3 refuses to read key without its
// SSE-C key, and that with the key it gives the bytes.
func checkNeedsCustomerKey(t *testing.T, b *backend, key string) {
	t.Helper()
	out, err := b.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(key)})
	if err == nil {
		body, _ := io.ReadAll(out.Body)
		out.Body.Close()
		t.Errorf("GetObject %s without the SSE-C key succeeded (%d bytes)", key, len(body))
		return
	}
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &resp) || resp.HTTPStatusCode() != http.StatusBadRequest {
		t.Errorf("GetObject %s without the SSE-C key: %v, want status 400", key, err)
	}
}

func sortedOps(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// TestABucketPolicyRequiringEncryption runs the gateway and `davgw check`
// against a SeaweedFS bucket whose policy denies every write without
// x-amz-server-side-encryption (common in regulated AWS accounts): refused
// without [s3].sse, the writes that create objects pass with it. (Large
// uploads are left out: SeaweedFS also applies the condition to
// CompleteMultipartUpload, ListParts and AbortMultipartUpload, which carry
// no such header from any client.)
func TestABucketPolicyRequiringEncryption(t *testing.T) {
	b := getBackend(t, "seaweedfs")
	ctx := context.Background()
	bucket := "davgw-sse-required"
	if err := createBucket(ctx, b.s3, bucket); err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"DenyUnencryptedWrites","Effect":"Deny","Principal":"*",` +
		`"Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/*",` +
		`"Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}}]}`
	if _, err := b.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = b.s3.DeleteBucketPolicy(context.Background(), &s3.DeleteBucketPolicyInput{Bucket: &bucket})
	})
	section := func(extra string) string {
		return fmt.Sprintf("[s3]\nendpoint = %q\nbucket = %q\nprefix = \"checked/\"\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\npart_size = \"5MiB\"\n%s",
			b.proxy.URL, bucket, b.server.access, b.server.secret, extra)
	}

	t.Run("davgw check without sse fails the put and names the key", func(t *testing.T) {
		code, out := runDavgw(t, section(""), nil, "check")
		if code != 1 || !strings.Contains(out, "✗ put checked/.davgw-check-") || !strings.Contains(out, "needs [s3].sse") {
			t.Fatalf("exit %d, want 1 with the put refused and the sse fix:\n%s", code, out)
		}
	})
	t.Run("davgw check with sse passes every probe that creates an object", func(t *testing.T) {
		code, out := runDavgw(t, section("sse = \"aws:kms\"\nsse_kms_key_id = \"davgw-check-key\"\n"), nil, "check")
		for _, w := range []string{"✓ writes ask for SSE aws:kms (key davgw-check-key)", "✓ put checked/.davgw-check-", "✓ head", "✓ get",
			"✓ copy", "✓ multipart create", "✓ multipart upload part", "✓ delete"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q", w)
			}
		}
		// SeaweedFS applies the Null condition to ListParts and
		// AbortMultipartUpload too, which no S3 client can send the header
		// with (S3 refuses it there): those two probes fail on it, nothing else.
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "✗") && !strings.HasPrefix(line, "✗ multipart list parts") && !strings.HasPrefix(line, "✗ multipart abort") {
				t.Errorf("failed probe: %s", line)
			}
		}
		if wantCode := map[bool]int{false: 0, true: 1}[strings.Contains(out, "✗")]; code != wantCode {
			t.Errorf("exit %d, want %d", code, wantCode)
		}
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
	})
	for _, tc := range []struct {
		name string
		sse  string
		want int
	}{
		{"a PUT without sse is refused with 403", "", http.StatusForbidden},
		{"MKCOL, PUT, COPY, MOVE and the index pass with sse", "AES256", http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := storeConfig(b, b.proxy.URL, gatewayPartSize, 2)
			cfg.Bucket, cfg.SSE = bucket, tc.sse
			e := optionsEnv(t, b, cfg)
			dir := "/dav/policy-" + randHex(4) + "/"
			if tc.want != http.StatusCreated {
				expect(t, "PUT f.txt", e.alice(t, http.MethodPut, "/dav/f-"+randHex(4)+".txt", nil, []byte("f")), tc.want)
				return
			}
			expect(t, "MKCOL", e.alice(t, "MKCOL", dir, nil, nil), http.StatusCreated)
			expect(t, "PUT f.txt", e.alice(t, http.MethodPut, dir+"f.txt", map[string]string{"X-OC-Mtime": "1700000000"}, []byte("f")), http.StatusCreated)
			expect(t, "COPY", e.alice(t, "COPY", dir+"f.txt", map[string]string{"Destination": e.URL + dir + "copy.txt"}, nil), http.StatusCreated)
			expect(t, "MOVE", e.alice(t, "MOVE", dir+"f.txt", map[string]string{"Destination": e.URL + dir + "g.txt"}, nil), http.StatusCreated)
			if err := e.gw.WritePending(context.Background()); err != nil {
				t.Fatalf("the index write was refused: %v", err)
			}
		})
	}
}

// TestCheckWithAnSSECKey runs `davgw check` on SeaweedFS with an SSE-C key
// from the environment and from a key file: every probe passes with the
// key, and the output never shows it.
func TestCheckWithAnSSECKey(t *testing.T) {
	b := getBackend(t, "seaweedfs")
	key := []byte("davgw-check-sse-c-key-987654321!")
	keyB64 := base64.StdEncoding.EncodeToString(key)
	keyFile := filepath.Join(t.TempDir(), "sse-c.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extra string
		env         []string
	}{
		{"a key from ${ENV}", "sse_c_key = \"${DAVGW_TEST_SSE_C}\"\n", []string{"DAVGW_TEST_SSE_C=" + keyB64}},
		{"a key file of 32 raw bytes", fmt.Sprintf("sse_c_key_file = %q\n", keyFile), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := fmt.Sprintf("[s3]\nendpoint = %q\nbucket = %q\nprefix = \"ssec-check/\"\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\n%s",
				b.proxy.URL, b.bucket, b.server.access, b.server.secret, tc.extra)
			mark := b.proxy.Mark()
			code, out := runDavgw(t, doc, tc.env, "check")
			if code != 0 || strings.Contains(out, "✗") || !strings.Contains(out, "✓ writes ask for SSE-C (customer key)") {
				t.Errorf("exit %d, want 0 with every probe passing:\n%s", code, out)
			}
			if strings.Contains(out, keyB64) || strings.Contains(out, string(key)) {
				t.Errorf("the output shows the key:\n%s", out)
			}
			var withKey int
			for _, c := range b.proxy.SinceUnder(mark, "ssec-check/") {
				if slices.Contains(customerOps, c.Op()) {
					if c.Options["X-Amz-Server-Side-Encryption-Customer-Key"] != keyB64 {
						t.Errorf("%s %s without the key", c.Op(), c.Key)
					}
					withKey++
				}
			}
			if withKey < 8 { // put, head, get, copy, create, part, list parts, the head after delete
				t.Errorf("%d calls with the key, want at least 8", withKey)
			}
		})
	}
}
