package config

import (
	"net/netip"
	"slices"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// The accessors below return what Parse read, each value parsed once and
// checked (a Config from Parse or LoadFile).

// S3Config returns the s3vfs configuration: the fields of [s3] merged over
// [s3].url (a field set one by one wins), as s3vfs checked it.
func (c *Config) S3Config() s3vfs.Config { return c.v.def.store }

// StoreConfig is one store of the config: its name ("" for [s3]), the
// s3vfs configuration as s3vfs checked it, its key prefix, and whether the
// bucket is checked at start-up and after what age the janitor aborts
// abandoned uploads.
type StoreConfig struct {
	// Name is "" for [s3], else NAME of [s3.stores.NAME].
	Name string
	// S3 is the store's s3vfs configuration (Bucket may be s3vfs.AnyBucket).
	S3 s3vfs.Config
	// Prefix is the store's key prefix ("" or ending in "/").
	Prefix string
	// CheckBucket is its check_bucket (default true).
	CheckBucket bool
	// AbandonedUploadAge is its abandoned_upload_age; 0 = no janitor.
	AbandonedUploadAge time.Duration
	// Describe is a one-line, secret-free summary for logs.
	Describe string
}

// Stores returns every store: [s3] first (Name ""), then [s3.stores.NAME]
// by name.
func (c *Config) Stores() []StoreConfig {
	out := []StoreConfig{c.v.def.config("")}
	names := make([]string, 0, len(c.v.stores))
	for n := range c.v.stores {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, c.v.stores[n].config(n))
	}
	return out
}

func (v storeValues) config(name string) StoreConfig {
	return StoreConfig{Name: name, S3: v.store, Prefix: v.s3.Prefix, CheckBucket: v.checkBucket,
		AbandonedUploadAge: v.abandonedAge, Describe: v.describe()}
}

// S3CredentialSource returns the effective [s3].credentials: "static",
// "default" or "iam_lookup". The CrushFTP form access_key_id = "iam_lookup"
// (secret "lookup"), in the URL or the fields, means "iam_lookup"; keys
// without a source mean "static"; nothing means "default".
func (c *Config) S3CredentialSource() string { return c.v.def.store.Credentials }

// AppPasswordMaxAge returns [auth.oidc].app_password_max_age: 0 = app
// passwords never expire.
func (c *Config) AppPasswordMaxAge() time.Duration { return c.v.appPasswordMaxAge }

// UploadLimits returns [limits] for the gateway (0 = its default).
func (c *Config) UploadLimits() (perUser, perAddress int, memPerUser, memPerAddress int64) {
	return c.Limits.UploadsPerUser, c.Limits.UploadsPerAddress, c.v.memPerUser, c.v.memPerAddress
}

// TrustedProxies returns [server].trusted_proxies as networks.
func (c *Config) TrustedProxies() []netip.Prefix { return slices.Clone(c.v.proxies) }

// RequestLimits returns [limits]' bounds of one request: XML depth and
// element count, ranges of a GET (0 = the gateway's defaults).
func (c *Config) RequestLimits() (xmlDepth, xmlElements, ranges int) {
	return c.Limits.XMLDepth, c.Limits.XMLElements, c.Limits.RangesPerRequest
}

// PasswordChecks returns [limits]' bounds of bcrypt checks running and
// waiting (0 = auth's defaults).
func (c *Config) PasswordChecks() (running, waiting int) {
	return c.Limits.PasswordChecks, c.Limits.PasswordChecksWaiting
}

// LockLimits returns [limits] for the lock table (0 = its default).
func (c *Config) LockLimits() (perUser, ownerBytes int) {
	return c.Limits.LocksPerUser, int(c.v.lockOwner)
}

// QuotaBytes returns [webdav].quota_bytes: 0 = no quota.
func (c *Config) QuotaBytes() int64 { return c.v.quota }

// BodyIdleTimeout returns [server].body_idle_timeout.
func (c *Config) BodyIdleTimeout() time.Duration { return c.v.bodyIdle }

// AbandonedUploadAge returns [s3].abandoned_upload_age: 0 turns the
// janitor off.
func (c *Config) AbandonedUploadAge() time.Duration { return c.v.def.abandonedAge }

// S3Settings are the effective connection settings after merging the
// [s3] fields over [s3].url.
type S3Settings struct {
	// Endpoint is the S3 endpoint URL, "" = AWS.
	Endpoint string
	// Region is the signing region.
	Region string
	// Bucket is the bucket name.
	Bucket string
	// Prefix is the key prefix, "" or ending in "/".
	Prefix string
	// PathStyle is the effective path-style setting.
	PathStyle bool
	// PathStyleSet tells that [s3].path_style was given: otherwise a
	// provider preset may turn path style on.
	PathStyleSet bool
	// AccessKeyID is the static key ID, "" for the default chain.
	AccessKeyID string
	// SecretAccessKey is the static secret (never print it).
	SecretAccessKey string
}

// S3Settings returns the [s3] fields merged over [s3].url.
func (c *Config) S3Settings() S3Settings { return c.v.def.s3 }

// mergeS3 merges the fields of a store's table s over u (its url, nil if
// none or unreadable): a field set one by one wins. Region from an AWS host name
// in the URL is used only when region is left at its default.
func mergeS3(s *S3, u *S3URL) S3Settings {
	out := S3Settings{
		Endpoint:        s.Endpoint,
		Region:          s.Region,
		Bucket:          s.Bucket,
		Prefix:          s.Prefix,
		AccessKeyID:     s.AccessKeyID,
		SecretAccessKey: s.SecretAccessKey,
	}
	if u != nil {
		if out.Endpoint == "" {
			out.Endpoint = u.Endpoint
			out.PathStyle = u.PathStyle
		}
		if (out.Region == "" || out.Region == DefaultRegion) && u.Region != "" {
			out.Region = u.Region
		}
		if out.Bucket == "" {
			out.Bucket = u.Bucket
		}
		if out.Prefix == "" {
			out.Prefix = u.Prefix
		}
		if out.AccessKeyID == "" {
			out.AccessKeyID = u.AccessKeyID
		}
		if out.SecretAccessKey == "" {
			out.SecretAccessKey = u.SecretAccessKey
		}
	}
	if s.PathStyle != nil {
		out.PathStyle, out.PathStyleSet = *s.PathStyle, true
	}
	return out
}

// Prefix returns the effective [s3].prefix ("" or ending in "/").
func (c *Config) Prefix() string { return c.S3Settings().Prefix }

// CheckBucket reports whether the bucket is checked at start-up
// ([s3].check_bucket, default true).
func (c *Config) CheckBucket() bool { return c.v.def.checkBucket }

// TLS reports whether the listener serves HTTPS.
func (c *Config) TLS() bool { return c.Server.TLSCert != "" && c.Server.TLSKey != "" }

// RoleDuration returns [s3].role_duration.
func (c *Config) RoleDuration() time.Duration { return c.v.def.roleDuration }

// Describe returns a one-line, secret-free summary of where the gateway
// stores data ([s3]), for start-up logs: endpoint, bucket, prefix and the
// key ID (never the secret).
func (c *Config) Describe() string { return c.v.def.describe() }

func (v storeValues) describe() string {
	s := v.s3
	ep := s.Endpoint
	if ep == "" {
		region := s.Region
		if region == "" {
			region = "region from the instance"
			if v.store.Credentials != "iam_lookup" {
				region = DefaultRegion
			}
		}
		ep = "AWS S3 (" + region + ")"
	}
	out := ep + " bucket=" + s.Bucket
	if s.Prefix != "" {
		out += " prefix=" + s.Prefix
	}
	if s.AccessKeyID != "" && v.store.Credentials == "static" {
		out += " access_key_id=" + s.AccessKeyID
	}
	if v.store.Provider != "" {
		out += " provider=" + v.store.Provider
	}
	return out
}
