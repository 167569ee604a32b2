package config

import "github.com/davgw/davgw/s3vfs"

// objectOptions copies the object options of [s3] (sse, sse_kms_key_id,
// sse_c_key, sse_c_key_file, storage_class, acl) into cfg.
func (s S3) objectOptions(cfg *s3vfs.Config) {
	cfg.SSE, cfg.SSEKMSKeyID = s.SSE, s.SSEKMSKeyID
	cfg.SSECustomerKey, cfg.SSECustomerKeyFile = s.SSECustomerKey, s.SSECustomerKeyFile
	cfg.StorageClass, cfg.ACL = s.StorageClass, s.ACL
}
