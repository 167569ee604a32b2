package config

import (
	"reflect"
	"strings"

	"github.com/davgw/davgw/s3vfs"
)

// objectOptions copies the object options of [s3] (sse, sse_kms_key_id,
// sse_c_key, sse_c_key_file, storage_class, acl) into cfg.
func (s S3) objectOptions(cfg *s3vfs.Config) {
	cfg.SSE, cfg.SSEKMSKeyID = s.SSE, s.SSEKMSKeyID
	cfg.SSECustomerKey, cfg.SSECustomerKeyFile = s.SSECustomerKey, s.SSECustomerKeyFile
	cfg.StorageClass, cfg.ACL = s.StorageClass, s.ACL
}

// checkObjectOptions reports the problems s3vfs finds in the object
// options (its rules), each under its TOML key: s3vfs names the fields of
// s3vfs.Config, which [s3] names alike.
func (c *Config) checkObjectOptions(add func(string, string, ...any)) {
	c.S3Config().CheckObjectOptions(func(field, msg string, related ...string) {
		for _, r := range related {
			msg = strings.ReplaceAll(msg, "{"+r+"}", objectOptionKey(r))
		}
		add("s3."+objectOptionKey(field), "%s", msg)
	})
}

// objectOptionKey is the [s3] key of an s3vfs.Config field.
func objectOptionKey(field string) string {
	if f, ok := reflect.TypeFor[S3]().FieldByName(field); ok {
		return strings.Split(f.Tag.Get("toml"), ",")[0]
	}
	return strings.ToLower(field)
}
