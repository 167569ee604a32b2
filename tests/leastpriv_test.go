package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// allowedPermissions is the least-privilege list of issue 3 and of
// docs/iam-policy.json: davgw works with exactly these and calls nothing
// else.
var allowedPermissions = map[string]bool{
	"s3:GetBucketLocation":          true,
	"s3:ListBucket":                 true,
	"s3:ListBucketMultipartUploads": true,
	"s3:PutObject":                  true,
	"s3:AbortMultipartUpload":       true,
	"s3:ListMultipartUploadParts":   true,
	"s3:DeleteObject":               true,
	"s3:GetObject":                  true,
	"s3:GetObjectAttributes":        true,
}

// bucketRootPermissions are what a store with bucket = "*" adds
// (docs/iam-policy-every-bucket.json): its calls only.
var bucketRootPermissions = map[string]bool{"s3:ListAllMyBuckets": true}

// optionPermissions are what [s3]'s object options add to that list
// (docs/s3.md "Encryption, storage class and ACL"): a call carrying the
// header needs the permission, a call without it never does. The KMS
// permissions of sse = "aws:kms" (kms:GenerateDataKey, kms:Decrypt) are
// KMS's, not S3's: no S3 call here names them.
var optionPermissions = map[string]string{
	"X-Amz-Acl": "s3:PutObjectAcl",
}

// plainParams are query parameters that select nothing beyond the
// operation (listing options, multipart identifiers, the SDK's x-id).
// Any other parameter (versionId, tagging, acl, ...) is a sub-resource
// with a permission of its own, so a call carrying it is refused.
var plainParams = map[string]bool{
	"x-id": true, "prefix": true, "delimiter": true, "max-keys": true, "continuation-token": true,
	"start-after": true, "fetch-owner": true, "encoding-type": true, "list-type": true, "marker": true,
	"key-marker": true, "upload-id-marker": true, "max-uploads": true, "part-number-marker": true,
	"max-parts": true, "partNumber": true, "uploadId": true, "uploads": true, "delete": true,
	"location": true, "attributes": true,
}

// permissionsFor returns the IAM permissions an S3 request needs, or an
// error naming what it is when it needs one outside the S3 API surface
// this check knows (bucket configuration, versions, ACLs, tags).
func permissionsFor(c s3Call) ([]string, error) {
	for k := range c.Query {
		if !plainParams[k] {
			return nil, fmt.Errorf("sub-resource %q", k)
		}
	}
	q := c.Query
	obj := c.Key != ""
	switch c.Method {
	case http.MethodGet:
		switch {
		case !obj && q.Has("uploads"):
			return []string{"s3:ListBucketMultipartUploads"}, nil
		case !obj && q.Has("location"):
			return []string{"s3:GetBucketLocation"}, nil
		case c.Bucket == "":
			return []string{"s3:ListAllMyBuckets"}, nil // ListBuckets
		case !obj:
			return []string{"s3:ListBucket"}, nil // ListObjects(V2)
		case q.Has("uploadId"):
			return []string{"s3:ListMultipartUploadParts"}, nil
		case q.Has("attributes"):
			return []string{"s3:GetObjectAttributes"}, nil
		case q.Has("uploads") || q.Has("delete") || q.Has("location"):
			return nil, fmt.Errorf("GET of an object with a bucket sub-resource")
		}
		return []string{"s3:GetObject"}, nil
	case http.MethodHead:
		if !obj {
			return []string{"s3:ListBucket"}, nil // HeadBucket
		}
		return []string{"s3:GetObject"}, nil
	case http.MethodPut:
		if !obj {
			return nil, fmt.Errorf("PUT on the bucket (CreateBucket or bucket configuration)")
		}
		perms := []string{"s3:PutObject"} // PutObject, UploadPart
		if c.CopySource != "" {
			perms = append(perms, "s3:GetObject") // CopyObject, UploadPartCopy
		}
		if c.Options["X-Amz-Acl"] != "" {
			perms = append(perms, "s3:PutObjectAcl") // [s3].acl
		}
		return perms, nil
	case http.MethodPost:
		switch {
		case !obj && q.Has("delete"):
			return []string{"s3:DeleteObject"}, nil // DeleteObjects
		case obj && q.Has("uploads") && c.Options["X-Amz-Acl"] != "":
			return []string{"s3:PutObject", "s3:PutObjectAcl"}, nil // CreateMultipartUpload with [s3].acl
		case obj && (q.Has("uploads") || q.Has("uploadId")):
			return []string{"s3:PutObject"}, nil // Create/CompleteMultipartUpload
		}
		return nil, fmt.Errorf("POST other than DeleteObjects or multipart create/complete")
	case http.MethodDelete:
		switch {
		case obj && q.Has("uploadId"):
			return []string{"s3:AbortMultipartUpload"}, nil
		case obj:
			return []string{"s3:DeleteObject"}, nil
		}
		return nil, fmt.Errorf("DELETE of the bucket")
	}
	return nil, fmt.Errorf("method %s", c.Method)
}

// optionPermission reports whether perm is allowed for c because c
// carries the object option that needs it.
func optionPermission(c s3Call, perm string) bool {
	for h, p := range optionPermissions {
		if p == perm && c.Options[h] != "" {
			return true
		}
	}
	return false
}

// recordedProxies are every counting proxy the run started: their calls
// are what the gateway sent to S3.
var recordedProxies proxyList

type proxyList struct {
	mu      sync.Mutex
	proxies []*countingProxy
}

func (l *proxyList) add(p *countingProxy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.proxies = append(l.proxies, p)
}

func (l *proxyList) all() []*countingProxy {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*countingProxy(nil), l.proxies...)
}

// checkLeastPrivilege maps every S3 call recorded during the run to its
// permissions, prints the tally to w, and returns 1 if any call needs a
// permission outside allowedPermissions (or cannot be mapped), else 0.
func checkLeastPrivilege(w io.Writer) int {
	perms := map[string]int{}
	var bad []string
	total := 0
	for _, p := range recordedProxies.all() {
		for _, c := range p.Since(0) {
			total++
			ps, err := permissionsFor(c)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s (%v)", c, err))
				continue
			}
			for _, perm := range ps {
				perms[perm]++
				if !allowedPermissions[perm] && !optionPermission(c, perm) && !(p.everyBucket && bucketRootPermissions[perm]) {
					bad = append(bad, fmt.Sprintf("%s needs %s", c, perm))
				}
			}
		}
	}
	if total == 0 {
		return 0 // a run that reached no S3 server (e.g. -run on a unit test)
	}
	names := make([]string, 0, len(perms))
	for p := range perms {
		names = append(names, p)
	}
	sort.Strings(names)
	var tally []string
	for _, p := range names {
		tally = append(tally, fmt.Sprintf("%s=%d", p, perms[p]))
	}
	line := fmt.Sprintf("least privilege: %d S3 calls recorded, permissions used: %s", total, strings.Join(tally, " "))
	fmt.Fprintln(w, line)
	appendReport(line)
	if len(bad) > 0 {
		sort.Strings(bad)
		fmt.Fprintf(w, "FAIL least privilege: %d S3 calls outside the allowed permissions:\n\t%s\n", len(bad), strings.Join(bad, "\n\t"))
		return 1
	}
	return 0
}

// appendReport adds a line to $DAVGW_TEST_REPORT outside of any test
// (report needs a testing.TB).
func appendReport(line string) {
	path := os.Getenv("DAVGW_TEST_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
}

func TestPermissionsForMapsEachS3Call(t *testing.T) {
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	tests := []struct {
		name     string
		call     s3Call // in the bucket "b" unless noBucket
		noBucket bool
		want     string // "" = refused
	}{
		{name: "a ListBuckets needs s3:ListAllMyBuckets", call: s3Call{Method: "GET"}, noBucket: true, want: "s3:ListAllMyBuckets"},
		{name: "a ListObjectsV2 needs s3:ListBucket", call: s3Call{Method: "GET", Query: q("list-type=2&prefix=a/&delimiter=/")}, want: "s3:ListBucket"},
		{name: "a HeadBucket needs s3:ListBucket", call: s3Call{Method: "HEAD"}, want: "s3:ListBucket"},
		{name: "a GetBucketLocation needs s3:GetBucketLocation", call: s3Call{Method: "GET", Query: q("location=")}, want: "s3:GetBucketLocation"},
		{name: "a ListMultipartUploads needs s3:ListBucketMultipartUploads", call: s3Call{Method: "GET", Query: q("uploads=&prefix=p/")}, want: "s3:ListBucketMultipartUploads"},
		{name: "a GetObject needs s3:GetObject", call: s3Call{Method: "GET", Key: "k", Query: q("x-id=GetObject")}, want: "s3:GetObject"},
		{name: "a HeadObject needs s3:GetObject", call: s3Call{Method: "HEAD", Key: "k"}, want: "s3:GetObject"},
		{name: "a ListParts needs s3:ListMultipartUploadParts", call: s3Call{Method: "GET", Key: "k", Query: q("uploadId=u")}, want: "s3:ListMultipartUploadParts"},
		{name: "a GetObjectAttributes needs s3:GetObjectAttributes", call: s3Call{Method: "GET", Key: "k", Query: q("attributes=")}, want: "s3:GetObjectAttributes"},
		{name: "a PutObject needs s3:PutObject", call: s3Call{Method: "PUT", Key: "k", Query: q("x-id=PutObject")}, want: "s3:PutObject"},
		{name: "a CopyObject needs s3:PutObject and s3:GetObject", call: s3Call{Method: "PUT", Key: "k", CopySource: "b/s"}, want: "s3:PutObject,s3:GetObject"},
		{name: "an UploadPart needs s3:PutObject", call: s3Call{Method: "PUT", Key: "k", Query: q("partNumber=1&uploadId=u")}, want: "s3:PutObject"},
		{name: "a CreateMultipartUpload needs s3:PutObject", call: s3Call{Method: "POST", Key: "k", Query: q("uploads=")}, want: "s3:PutObject"},
		{name: "an AbortMultipartUpload needs s3:AbortMultipartUpload", call: s3Call{Method: "DELETE", Key: "k", Query: q("uploadId=u")}, want: "s3:AbortMultipartUpload"},
		{name: "a DeleteObjects needs s3:DeleteObject", call: s3Call{Method: "POST", Query: q("delete=")}, want: "s3:DeleteObject"},
		{name: "a GetObjectTagging is refused", call: s3Call{Method: "GET", Key: "k", Query: q("tagging=")}},
		{name: "a GetObject of a version is refused", call: s3Call{Method: "GET", Key: "k", Query: q("versionId=v")}},
		{name: "a PutObjectAcl is refused", call: s3Call{Method: "PUT", Key: "k", Query: q("acl=")}},
		{name: "a CreateBucket is refused", call: s3Call{Method: "PUT"}},
		{name: "a DeleteBucket is refused", call: s3Call{Method: "DELETE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.noBucket {
				tt.call.Bucket = "b"
			}
			ps, err := permissionsFor(tt.call)
			got := strings.Join(ps, ",")
			if tt.want == "" {
				if err == nil {
					t.Fatalf("mapped to %s, want refused", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q (err %v), want %q", got, err, tt.want)
			}
		})
	}
}
