package s3vfs

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testCustomerKey is an SSE-C key for tests: 32 bytes.
var testCustomerKey = []byte("0123456789abcdef-davgw-test-key!")

// optionFields are the fields of S3 inputs that carry object options.
var optionFields = []string{
	"ServerSideEncryption", "SSEKMSKeyId", "StorageClass", "ACL",
	"SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5",
	"CopySourceSSECustomerAlgorithm", "CopySourceSSECustomerKey", "CopySourceSSECustomerKeyMD5",
}

// optionsSeen calls every s3API method of an optionsClient with a fresh
// input and returns, per operation, the option fields it set. The inner
// client is nil: its call panics after the options were applied.
func optionsSeen(t *testing.T, opts *objectOptions) map[string]map[string]string {
	t.Helper()
	seen := map[string]map[string]string{}
	c := reflect.ValueOf(optionsClient{opts: opts})
	api := reflect.TypeFor[s3API]()
	for i := range api.NumMethod() {
		m := api.Method(i)
		in := reflect.New(m.Type.In(1).Elem())
		func() {
			defer func() { _ = recover() }() // the nil inner client
			c.MethodByName(m.Name).Call([]reflect.Value{reflect.ValueOf(context.Background()), in})
		}()
		got := map[string]string{}
		for _, f := range optionFields {
			v := in.Elem().FieldByName(f)
			if !v.IsValid() {
				continue // the input has no such field
			}
			switch {
			case v.Kind() == reflect.Pointer && !v.IsNil():
				got[f] = v.Elem().String()
			case v.Kind() == reflect.String && v.String() != "":
				got[f] = v.String()
			default:
				got[f] = "" // the input has the field, left unset
			}
		}
		seen[m.Name] = got
	}
	return seen
}

func TestObjectOptionsCoverEveryOperation(t *testing.T) {
	keyB64 := base64.StdEncoding.EncodeToString(testCustomerKey)
	sum := md5.Sum(testCustomerKey)
	md5B64 := base64.StdEncoding.EncodeToString(sum[:])
	// What each operation must carry; the others carry nothing.
	creates := []string{"PutObject", "CreateMultipartUpload", "CopyObject"}
	customer := []string{"PutObject", "CreateMultipartUpload", "CopyObject", "UploadPart", "UploadPartCopy",
		"CompleteMultipartUpload", "GetObject", "HeadObject", "ListParts"}
	copies := []string{"CopyObject", "UploadPartCopy"}

	t.Run("SSE-KMS, storage class and ACL go on every call that creates an object", func(t *testing.T) {
		o, err := newObjectOptions(Config{SSE: SSEKMS, SSEKMSKeyID: "alias/davgw", StorageClass: "STANDARD_IA", ACL: "bucket-owner-full-control"})
		if err != nil {
			t.Fatal(err)
		}
		for op, fields := range optionsSeen(t, &o) {
			want := map[string]string{}
			for f := range fields {
				want[f] = ""
			}
			if slices.Contains(creates, op) {
				want["ServerSideEncryption"], want["SSEKMSKeyId"] = "aws:kms", "alias/davgw"
				want["StorageClass"], want["ACL"] = "STANDARD_IA", "bucket-owner-full-control"
			}
			if !reflect.DeepEqual(fields, want) {
				t.Errorf("%s sets %v, want %v", op, fields, want)
			}
		}
	})
	t.Run("an SSE-C key goes on every call that reads or writes an object, and a copy's source", func(t *testing.T) {
		o, err := newObjectOptions(Config{SSECustomerKey: keyB64, StorageClass: "GLACIER_IR"})
		if err != nil {
			t.Fatal(err)
		}
		seen := optionsSeen(t, &o)
		for op, fields := range seen {
			want := map[string]string{}
			for f := range fields {
				want[f] = ""
			}
			if slices.Contains(creates, op) {
				want["StorageClass"] = "GLACIER_IR"
			}
			if slices.Contains(customer, op) {
				want["SSECustomerAlgorithm"], want["SSECustomerKey"], want["SSECustomerKeyMD5"] = "AES256", keyB64, md5B64
			}
			if slices.Contains(copies, op) {
				want["CopySourceSSECustomerAlgorithm"], want["CopySourceSSECustomerKey"], want["CopySourceSSECustomerKeyMD5"] = "AES256", keyB64, md5B64
			}
			if !reflect.DeepEqual(fields, want) {
				t.Errorf("%s sets %v, want %v", op, fields, want)
			}
		}
		for _, op := range customer {
			if _, ok := seen[op]; !ok {
				t.Errorf("%s is not an s3API method any more: update the lists", op)
			}
		}
	})
	t.Run("without options nothing is set", func(t *testing.T) {
		for op, fields := range optionsSeen(t, &objectOptions{}) {
			for f, v := range fields {
				if v != "" {
					t.Errorf("%s sets %s = %q", op, f, v)
				}
			}
		}
	})
}

func TestObjectOptionsValidation(t *testing.T) {
	keyB64 := base64.StdEncoding.EncodeToString(testCustomerKey)
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the problems, in any order; none = valid
	}{
		{"SSE-S3 is valid", Config{SSE: "AES256"}, nil},
		{"SSE-KMS with a key is valid", Config{SSE: "aws:kms", SSEKMSKeyID: "arn:aws:kms:eu-west-1:111122223333:key/abcd"}, nil},
		{"an SSE-C key over https is valid", Config{SSECustomerKey: keyB64, Endpoint: "https://s3.example.com"}, nil},
		{"an SSE-C key to AWS is valid", Config{SSECustomerKey: keyB64}, nil},
		{"an SSE-C key over http to loopback is valid", Config{SSECustomerKeyFile: "/k", Endpoint: "http://127.0.0.1:8333"}, nil},
		{"every storage class but the archive ones is valid", Config{StorageClass: "INTELLIGENT_TIERING"}, nil},
		{"a canned ACL is valid", Config{ACL: "bucket-owner-full-control"}, nil},
		{"an unknown SSE mode is refused", Config{SSE: "aes256"}, []string{"SSE must be"}},
		{"a KMS key without aws:kms is refused", Config{SSE: "AES256", SSEKMSKeyID: "alias/x"}, []string{`SSEKMSKeyID needs SSE = "aws:kms"`}},
		{"SSE with an SSE-C key is refused", Config{SSE: "AES256", SSECustomerKey: keyB64}, []string{"SSE cannot be combined"}},
		{"a key and a key file are refused", Config{SSECustomerKey: keyB64, SSECustomerKeyFile: "/k"}, []string{"set one"}},
		{"a short SSE-C key is refused", Config{SSECustomerKey: base64.StdEncoding.EncodeToString([]byte("short"))}, []string{"SSECustomerKey must be the base64 of 32 bytes"}},
		{"a key that is not base64 is refused", Config{SSECustomerKey: "not base64!"}, []string{"SSECustomerKey must be"}},
		{"an SSE-C key over plain http is refused", Config{SSECustomerKey: keyB64, Endpoint: "http://s3.example.com"}, []string{"Endpoint must be https://"}},
		{"an unknown storage class is refused", Config{StorageClass: "standard"}, []string{"StorageClass must be one of", `"GLACIER_IR"`}},
		{"GLACIER is refused", Config{StorageClass: "GLACIER"}, []string{"unreadable until they are restored"}},
		{"DEEP_ARCHIVE is refused", Config{StorageClass: "DEEP_ARCHIVE"}, []string{"unreadable until they are restored"}},
		{"an unknown ACL is refused", Config{ACL: "owner-full-control"}, []string{"ACL must be a canned ACL", `"bucket-owner-full-control"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Bucket = "bucket"
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want %q", err, w)
				}
			}
			if strings.Contains(err.Error(), keyB64) {
				t.Errorf("the message quotes the key: %v", err)
			}
		})
	}
}

func TestSSECustomerKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyB64 := base64.StdEncoding.EncodeToString(testCustomerKey)
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"32 raw bytes", testCustomerKey},
		{"base64 with a newline", []byte(keyB64 + "\n")},
	} {
		t.Run("a key file of "+tc.name+" is read", func(t *testing.T) {
			o, err := newObjectOptions(Config{SSECustomerKeyFile: write(tc.name, tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			if o.customer == nil || o.customer.key != keyB64 {
				t.Fatal("the key read differs")
			}
		})
	}
	t.Run("a key file of another size fails without showing its content", func(t *testing.T) {
		secret := "0123456789abcdef0123456789abcdef0" // 33 bytes
		_, err := newObjectOptions(Config{SSECustomerKeyFile: write("bad", []byte(secret))})
		if err == nil || !strings.Contains(err.Error(), "32 raw bytes") || strings.Contains(err.Error(), secret) {
			t.Fatalf("newObjectOptions = %v", err)
		}
	})
	t.Run("a missing key file fails at New", func(t *testing.T) {
		_, err := New(context.Background(), Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:1", AccessKeyID: "k", SecretAccessKey: "s",
			SSECustomerKeyFile: filepath.Join(dir, "missing")})
		if err == nil || !strings.Contains(err.Error(), "SSE-C key file") {
			t.Fatalf("New = %v", err)
		}
	})
}

func TestSSECustomerKeyIsNeverPrinted(t *testing.T) {
	keyB64 := base64.StdEncoding.EncodeToString(testCustomerKey)
	s, err := New(context.Background(), Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s", SSECustomerKey: keyB64})
	if err != nil {
		t.Fatal(err)
	}
	_, headErr := s.Head(context.Background(), "x") // a refused connection: the error S3 calls give
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v", s, s, s),
		fmt.Sprintf("%v %+v %#v", *s.objectOpts, *s.objectOpts, *s.objectOpts),
		fmt.Sprintf("%v %+v %#v", s.client, s.client, s.client),
		s.ObjectOptions(),
		headErr.Error(),
	} {
		if strings.Contains(out, keyB64) || strings.Contains(out, string(testCustomerKey)) {
			t.Fatalf("the key shows in %q", out)
		}
	}
	if got := s.ObjectOptions(); got != "SSE-C (customer key)" {
		t.Errorf("ObjectOptions = %q", got)
	}
}
