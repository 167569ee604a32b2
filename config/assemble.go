package config

import (
	"net/netip"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/s3vfs"
)

// S3Config returns the s3vfs configuration: the fields of [s3] merged over
// [s3].url (a field set one by one wins). Call it on a validated Config.
func (c *Config) S3Config() s3vfs.Config {
	s := c.S3Settings()
	cfg := s3vfs.Config{
		Endpoint:          s.Endpoint,
		Region:            s.Region,
		Bucket:            s.Bucket,
		PathStyle:         s.PathStyle,
		PathStyleSet:      s.PathStyleSet,
		AccessKeyID:       s.AccessKeyID,
		SecretAccessKey:   s.SecretAccessKey,
		SessionToken:      c.S3.SessionToken,
		Credentials:       c.S3CredentialSource(),
		IMDSEndpoint:      c.S3.IMDSEndpoint,
		IMDSv1Fallback:    c.S3.IMDSv1Fallback,
		RoleARN:           c.S3.RoleARN,
		ExternalID:        c.S3.ExternalID,
		RoleSessionName:   c.S3.RoleSessionName,
		STSEndpoint:       c.S3.STSEndpoint,
		Provider:          c.S3.Provider,
		Proxy:             c.S3.Proxy,
		Checksums:         c.S3.Checksums,
		UploadConcurrency: c.S3.UploadConcurrency,
	}
	c.S3.objectOptions(&cfg)
	if n, err := c.S3.PartSize.Bytes(); err == nil {
		cfg.PartSize = n
	}
	if c.S3.UploadMemory != "" {
		if n, err := c.S3.UploadMemory.Bytes(); err == nil {
			cfg.UploadMemory = n
		}
	}
	if c.S3.RoleARN != "" {
		cfg.RoleDuration = c.RoleDuration()
	}
	if cfg.Credentials != s3vfs.CredentialsStatic {
		// The instance role or the AWS SDK default chain: no static keys.
		cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken = "", "", ""
	}
	if cfg.Region == "" && cfg.Credentials != s3vfs.CredentialsIMDS {
		cfg.Region = DefaultRegion
	}
	return cfg
}

// S3CredentialSource returns the effective [s3].credentials: "static",
// "default" or "iam_lookup". The CrushFTP form access_key_id = "iam_lookup"
// (secret "lookup"), in the URL or the fields, means "iam_lookup"; keys
// without a source mean "static"; nothing means "default".
func (c *Config) S3CredentialSource() string {
	if c.S3.Credentials != "" {
		return c.S3.Credentials
	}
	s := c.S3Settings()
	switch s.AccessKeyID {
	case "":
		return "default"
	case "iam_lookup":
		return "iam_lookup"
	default:
		return "static"
	}
}

// AppPasswordMaxAge returns [auth.oidc].app_password_max_age: 0 = app
// passwords never expire.
func (c *Config) AppPasswordMaxAge() time.Duration {
	d, err := c.Auth.OIDC.AppPasswordMaxAge.Value()
	if err != nil {
		return auth.DefaultAppPasswordMaxAge
	}
	return d
}

// UploadLimits returns [limits] for the gateway (0 = its default).
func (c *Config) UploadLimits() (perUser, perAddress int, memPerUser, memPerAddress int64) {
	memPerUser, _ = c.Limits.UploadMemoryPerUser.Bytes()
	memPerAddress, _ = c.Limits.UploadMemoryPerAddress.Bytes()
	return c.Limits.UploadsPerUser, c.Limits.UploadsPerAddress, memPerUser, memPerAddress
}

// TrustedProxies returns [server].trusted_proxies as networks (call it on a
// validated Config: entries that do not parse are left out).
func (c *Config) TrustedProxies() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.Server.TrustedProxies))
	for _, v := range c.Server.TrustedProxies {
		if p, err := parseTrustedProxy(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}

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
	n, _ := c.Limits.LockOwnerBytes.Bytes()
	return c.Limits.LocksPerUser, int(n)
}

// BodyIdleTimeout returns [server].body_idle_timeout, or the default 60s
// when it does not parse.
func (c *Config) BodyIdleTimeout() time.Duration {
	d, err := c.Server.BodyIdleTimeout.Value()
	if err != nil || d <= 0 {
		d, _ = Duration(DefaultBodyIdleTimeout).Value()
	}
	return d
}

// AbandonedUploadAge returns [s3].abandoned_upload_age: 0 turns the
// janitor off; one that does not parse gives the default 24h.
func (c *Config) AbandonedUploadAge() time.Duration {
	d, err := c.S3.AbandonedUploadAge.Value()
	if err != nil {
		return s3vfs.DefaultAbandonedUploadAge
	}
	return d
}

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

// S3Settings merges the [s3] fields over [s3].url: a field set one by one
// wins. Region from an AWS host name in the URL is used only when region
// is left at its default.
func (c *Config) S3Settings() S3Settings {
	s := c.S3
	out := S3Settings{
		Endpoint:        s.Endpoint,
		Region:          s.Region,
		Bucket:          s.Bucket,
		Prefix:          s.Prefix,
		AccessKeyID:     s.AccessKeyID,
		SecretAccessKey: s.SecretAccessKey,
	}
	if s.URL != "" {
		if u, err := ParseS3URL(s.URL); err == nil {
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
func (c *Config) CheckBucket() bool { return c.S3.CheckBucket == nil || *c.S3.CheckBucket }

// TLS reports whether the listener serves HTTPS.
func (c *Config) TLS() bool { return c.Server.TLSCert != "" && c.Server.TLSKey != "" }

// RoleDuration returns [s3].role_duration, or 1h when it does not parse.
func (c *Config) RoleDuration() time.Duration {
	d, err := c.S3.RoleDuration.Value()
	if err != nil {
		return time.Hour
	}
	return d
}

// Describe returns a one-line, secret-free summary of where the gateway
// stores data, for start-up logs: endpoint, bucket, prefix and the key ID
// (never the secret).
func (c *Config) Describe() string {
	s := c.S3Settings()
	ep := s.Endpoint
	if ep == "" {
		region := s.Region
		if region == "" {
			region = "region from the instance"
			if c.S3CredentialSource() != "iam_lookup" {
				region = DefaultRegion
			}
		}
		ep = "AWS S3 (" + region + ")"
	}
	out := ep + " bucket=" + s.Bucket
	if s.Prefix != "" {
		out += " prefix=" + s.Prefix
	}
	if s.AccessKeyID != "" && c.S3CredentialSource() == "static" {
		out += " access_key_id=" + s.AccessKeyID
	}
	if c.S3.Provider != "" {
		out += " provider=" + c.S3.Provider
	}
	return out
}
