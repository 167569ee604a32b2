package config

import (
	"strings"
	"testing"

	"github.com/davgw/davgw/s3vfs"
)

const storesBase = `
[s3]
endpoint = "http://127.0.0.1:9000"
bucket = "main"
access_key_id = "K"
secret_access_key = "S"
`

// TestStoresAreCheckedLikeS3: each [s3.stores.NAME] is checked by the same
// pipeline as [s3], with its own key names, and gets the built-in defaults
// but none of [s3]'s values.
func TestStoresAreCheckedLikeS3(t *testing.T) {
	t.Run("an unset ${VAR} in a store names the store's key", func(t *testing.T) {
		_, err := Parse([]byte(storesBase+`[s3.stores.fin]
bucket = "fin"
external_id = "${NOT_SET}"
`), env(nil))
		for _, p := range problems(err) {
			if p.Key == "s3.stores.fin.external_id" {
				return
			}
		}
		t.Fatalf("want a problem of s3.stores.fin.external_id, got %v", err)
	})
	t.Run("a store gets the defaults, not the values of [s3]", func(t *testing.T) {
		c, err := Parse([]byte(storesBase+`
part_size = "32MiB"
[s3.stores.finance]
endpoint = "http://127.0.0.1:9001"
bucket = "fin"
prefix = "gw/"
role_arn = "arn:aws:iam::000000000000:role/fin"
external_id = "${FIN_EXT}"
sse = "AES256"
[auth]
root = "finance:teams/{username}/"
`), env(map[string]string{"FIN_EXT": "ext-1"}))
		if err != nil {
			t.Fatal(err)
		}
		stores := c.Stores()
		if len(stores) != 2 || stores[0].Name != "" || stores[1].Name != "finance" {
			t.Fatalf("stores %+v", stores)
		}
		fin := stores[1]
		if fin.S3.Bucket != "fin" || fin.Prefix != "gw/" || fin.S3.ExternalID != "ext-1" || fin.S3.SSE != "AES256" {
			t.Errorf("finance store %+v", fin)
		}
		if fin.S3.PartSize != s3vfs.DefaultPartSize || stores[0].S3.PartSize != 32<<20 {
			t.Errorf("part sizes %d and %d: the store must get the default, not [s3]'s", fin.S3.PartSize, stores[0].S3.PartSize)
		}
		if fin.S3.Credentials != s3vfs.CredentialsDefault || fin.S3.AccessKeyID != "" {
			t.Errorf("the store inherited [s3]'s keys: %q %q", fin.S3.Credentials, fin.S3.AccessKeyID)
		}
		if fin.S3.RoleSessionName != DefaultRoleSessionName || fin.AbandonedUploadAge != s3vfs.DefaultAbandonedUploadAge || !fin.CheckBucket {
			t.Errorf("defaults missing: %+v", fin)
		}
	})
	for _, tc := range []struct {
		name, toml string
		key, msg   string
	}{
		{"a root naming an undeclared store is an error naming the store", `[auth]
root = "nosuch:users/{username}/"`, "auth.root", `names the store "nosuch", which is not declared`},
		{"a user's root naming an undeclared store too", `[[auth.users]]
name = "ann"
password_hash = "$2a$04$Z0uMH5v8mGsD4YwNv1nqUukVw2lI.lY1Ry3iL/8w6oF2wq1YUV8Yq"
root = "gone:ann/"`, "auth.users[0].root", `names the store "gone"`},
		{"a store's problems name its own keys", `[s3.stores.arch]
bucket = "arch"
part_size = "1MiB"`, "s3.stores.arch.part_size", ""},
		{"a store name outside [a-z0-9_-] is refused", `[s3.stores.Bad]
bucket = "bad"`, "s3.stores.Bad", "a-z"},
		{"stores do not nest", `[s3.stores.a]
bucket = "aaa"
[s3.stores.a.stores.b]
bucket = "bbb"`, "s3.stores.a.stores", "do not nest"},
		{"the default store cannot serve every bucket", `[s3.stores.x]
bucket = "xxx"`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(storesBase+tc.toml), env(nil))
			if tc.key == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				_, err = Parse([]byte(strings.Replace(storesBase, `bucket = "main"`, `bucket = "*"`, 1)), env(nil))
				tc.key, tc.msg = "s3.bucket", "must name one bucket"
			}
			for _, p := range problems(err) {
				if p.Key == tc.key && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("want a problem of %s with %q, got %v", tc.key, tc.msg, err)
		})
	}
	t.Run("a store may serve every bucket", func(t *testing.T) {
		c, err := Parse([]byte(storesBase+`[s3.stores.all]
bucket = "*"
[[auth.users]]
name = "admin"
password_hash = "$2a$04$Z0uMH5v8mGsD4YwNv1nqUukVw2lI.lY1Ry3iL/8w6oF2wq1YUV8Yq"
root = "all:"
`), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Stores()[1].S3.Bucket; got != s3vfs.AnyBucket {
			t.Errorf("bucket %q", got)
		}
	})
}
