package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
)

// Limits checked by Validate.
const (
	minPartSize          = 5 << 20
	maxPartSize          = 5 << 30
	maxUploadConcurrency = 64
)

// Validate checks every key and returns all problems at once (errors.Join
// of *Problem, each naming its key), or nil. It does not touch the network
// or the file system and never quotes a secret.
func (c *Config) Validate() error {
	var ps []error
	add := func(key, format string, args ...any) { ps = append(ps, problemf(key, format, args...)) }
	notYet := func(key string) { add(key, "not supported yet: leave it unset") }

	// [server]
	if err := checkHostPort(c.Server.Listen); err != nil {
		add("server.listen", "%v", err)
	}
	if c.Server.PublicURL != "" {
		if u, err := url.Parse(c.Server.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			add("server.public_url", `must be an absolute http:// or https:// URL such as "https://dav.example.com"`)
		}
	}
	if err := checkDAVPrefix(c.Server.DAVPrefix); err != nil {
		add("server.dav_prefix", "%v", err)
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		add("server.tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.Server.AdminListen != "" {
		if err := checkHostPort(c.Server.AdminListen); err != nil {
			add("server.admin_listen", "%v", err)
		} else if sameListenAddr(c.Server.AdminListen, c.Server.Listen) {
			add("server.admin_listen", "must differ from server.listen: /metrics is never served on the WebDAV listener")
		}
	}

	if d, err := c.Server.BodyIdleTimeout.Value(); err != nil {
		add("server.body_idle_timeout", "%v", err)
	} else if d < time.Second {
		add("server.body_idle_timeout", `must be at least 1s, e.g. "60s"`)
	}

	for i, v := range c.Server.TrustedProxies {
		if _, err := parseTrustedProxy(v); err != nil {
			add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%v", err)
		}
	}

	c.validateS3(add, notYet)
	c.validateAuth(add, notYet)

	// [webdav]
	switch c.WebDAV.AppleFiles {
	case "allow", "hide", "reject":
	default:
		add("webdav.apple_files", `must be "allow", "hide" or "reject"`)
	}
	if c.WebDAV.MaxPropfindEntries < 0 {
		add("webdav.max_propfind_entries", "must be 0 (no cap) or more")
	}
	if n, err := c.WebDAV.QuotaBytes.Bytes(); err != nil {
		add("webdav.quota_bytes", "%v", err)
	} else if n < 0 {
		add("webdav.quota_bytes", "must not be negative")
	}

	// [limits]
	if c.Limits.UploadsPerUser < 0 {
		add("limits.uploads_per_user", "must be at least 1, or 0 for the default")
	}
	if c.Limits.UploadsPerAddress < 0 {
		add("limits.uploads_per_address", "must be at least 1, or 0 for the default")
	}
	if c.Limits.LocksPerUser < 0 {
		add("limits.locks_per_user", "must be at least 1, or 0 for the default")
	}
	if c.Limits.PendingSignInsPerAddress < 0 {
		add("limits.pending_sign_ins_per_address", "must be at least 1, or 0 for the default")
	}
	if c.Limits.PendingSignIns < 0 {
		add("limits.pending_sign_ins", "must be at least 1, or 0 for the default")
	}
	for _, b := range []struct {
		key      string
		v        int
		min, max int
	}{
		{"limits.xml_depth", c.Limits.XMLDepth, 8, 1000},
		{"limits.xml_elements", c.Limits.XMLElements, 100, 1000000},
		{"limits.ranges_per_request", c.Limits.RangesPerRequest, 1, 1000},
		{"limits.password_checks", c.Limits.PasswordChecks, 1, 1024},
		{"limits.password_checks_waiting", c.Limits.PasswordChecksWaiting, 1, 100000},
	} {
		if b.v != 0 && (b.v < b.min || b.v > b.max) {
			add(b.key, "must be between %d and %d, or 0 for the default", b.min, b.max)
		}
	}
	if c.Limits.LockOwnerBytes != "" {
		if n, err := c.Limits.LockOwnerBytes.Bytes(); err != nil {
			add("limits.lock_owner_bytes", "%v", err)
		} else if n < 256 || n > 1<<20 {
			add("limits.lock_owner_bytes", `must be between 256 and 1MiB, or "" for the default (4KiB)`)
		}
	}
	for key, v := range map[string]ByteSize{
		"limits.upload_memory_per_user":    c.Limits.UploadMemoryPerUser,
		"limits.upload_memory_per_address": c.Limits.UploadMemoryPerAddress,
	} {
		if v == "" {
			continue
		}
		if n, err := v.Bytes(); err != nil {
			add(key, "%v", err)
		} else if n < 5<<20 {
			add(key, `must be at least one part (5MiB), or "" for the default`)
		}
	}

	// [locks]
	switch {
	case c.Locks.Store == "memory":
	case strings.HasPrefix(c.Locks.Store, "redis://") || strings.HasPrefix(c.Locks.Store, "rediss://"):
		if u, err := url.Parse(c.Locks.Store); err != nil || u.Host == "" {
			add("locks.store", `must be "memory" or a URL such as "redis://127.0.0.1:6379/0"`)
		} else if db := strings.Trim(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				add("locks.store", "the URL's path must be a database number, e.g. /0")
			}
		}
	default:
		add("locks.store", `must be "memory" or a URL such as "redis://127.0.0.1:6379/0"`)
	}
	return errors.Join(ps...)
}

func (c *Config) validateS3(add func(string, string, ...any), notYet func(string)) {
	s := &c.S3
	var fromURL *S3URL
	if s.URL != "" {
		u, err := ParseS3URL(s.URL)
		if err != nil {
			add("s3.url", "%v", err)
		}
		fromURL = u
	}
	if s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			add("s3.endpoint", `must be an http:// or https:// URL without credentials, e.g. "https://s3.example.com:9000"`)
		}
	}
	if strings.ContainsAny(s.Region, " /\\\t\r\n") || hasControl(s.Region) {
		add("s3.region", `is not a region name such as "us-east-1" ("" = from the URL's AWS host, the instance, else us-east-1)`)
	}
	bucket := s.Bucket
	if bucket == "" && fromURL != nil {
		bucket = fromURL.Bucket
	}
	if s.URL == "" || fromURL != nil {
		if bucket == "" {
			add("s3.bucket", "is required (or give it in s3.url)")
		} else if strings.ContainsAny(bucket, `/\ `) || hasControl(bucket) || len(bucket) > 255 {
			add("s3.bucket", "is not a valid bucket name")
		}
	}
	if err := checkPrefix(s.Prefix); err != nil {
		add("s3.prefix", "%v", err)
	}
	if s.AccessKeyID == "iam_lookup" && s.SecretAccessKey != "" && s.SecretAccessKey != "lookup" {
		add("s3.secret_access_key", `must be "lookup" or empty with access_key_id = "iam_lookup" (the EC2 instance role)`)
	}
	if (s.AccessKeyID == "") != (s.SecretAccessKey == "") && s.AccessKeyID != "iam_lookup" {
		// A key given here pairs with a secret given here or in the URL.
		if fromURL == nil || fromURL.AccessKeyID == "" {
			add("s3.access_key_id", "access_key_id and secret_access_key must be set together")
		}
	}
	if s.SessionToken != "" && s.AccessKeyID == "" && (fromURL == nil || fromURL.AccessKeyID == "") {
		add("s3.session_token", "needs access_key_id and secret_access_key")
	}
	switch s.Credentials {
	case "", "static", "default":
	case "iam_lookup":
	default:
		add("s3.credentials", `must be "", "static", "default" or "iam_lookup"`)
	}
	if s.Credentials == "static" && s.AccessKeyID == "" && (fromURL == nil || fromURL.AccessKeyID == "") {
		add("s3.credentials", `"static" needs access_key_id and secret_access_key`)
	}
	if s.IMDSEndpoint != "" {
		if u, err := url.Parse(s.IMDSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			add("s3.imds_endpoint", `must be an http:// URL such as "http://169.254.169.254"`)
		}
	}
	if (s.IMDSv1Fallback || s.IMDSEndpoint != "") && c.S3CredentialSource() == "static" {
		add("s3.imds_endpoint", `imds_endpoint and imds_v1_fallback apply only to the instance role (credentials = "iam_lookup") and the default chain (credentials = "default"), not to static keys`)
	}
	if s.RoleARN != "" && !strings.HasPrefix(s.RoleARN, "arn:") {
		add("s3.role_arn", `must be an ARN such as "arn:aws:iam::123456789012:role/NAME"`)
	}
	if (s.ExternalID != "" || s.STSEndpoint != "") && s.RoleARN == "" {
		add("s3.role_arn", "external_id and sts_endpoint need role_arn")
	}
	switch s.Provider {
	case "", "aws", "gcs", "b2", "ceph", "minio", "other":
	default:
		add("s3.provider", `must be "aws", "gcs", "b2", "ceph", "minio" or "other"`)
	}
	if s.Provider != "" && s.Provider != "aws" && s.Provider != "gcs" && s.Endpoint == "" && (fromURL == nil || fromURL.Endpoint == "") {
		add("s3.endpoint", "provider %q needs the store's endpoint (or a host in s3.url)", s.Provider)
	}
	if d, err := s.AbandonedUploadAge.Value(); err != nil {
		add("s3.abandoned_upload_age", "%v", err)
	} else if d != 0 && d < time.Hour {
		add("s3.abandoned_upload_age", `must be at least 1h (uploads younger than that may still be running), or "0" to turn the janitor off`)
	}
	if n := len(s.RoleSessionName); n < 2 || n > 64 {
		add("s3.role_session_name", "must be 2 to 64 characters")
	}
	if d, err := s.RoleDuration.Value(); err != nil {
		add("s3.role_duration", "%v", err)
	} else if d.Minutes() < 15 || d.Hours() > 12 {
		add("s3.role_duration", "must be between 15m and 12h")
	}
	if s.STSEndpoint != "" {
		if u, err := url.Parse(s.STSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("s3.sts_endpoint", "must be an http:// or https:// URL")
		}
	}
	switch s.Checksums {
	case "when_required", "when_supported":
	default:
		add("s3.checksums", `must be "when_required" or "when_supported"`)
	}
	if n, err := s.PartSize.Bytes(); err != nil {
		add("s3.part_size", "%v", err)
	} else if n < minPartSize || n > maxPartSize {
		add("s3.part_size", "must be between 5MiB and 5GiB (S3's part limits)")
	}
	if s.UploadConcurrency < 1 || s.UploadConcurrency > maxUploadConcurrency {
		add("s3.upload_concurrency", "must be between 1 and %d", maxUploadConcurrency)
	}
	if s.UploadMemory != "" {
		if n, err := s.UploadMemory.Bytes(); err != nil {
			add("s3.upload_memory", "%v", err)
		} else if ps, perr := s.PartSize.Bytes(); n <= 0 || (perr == nil && n < ps) {
			add("s3.upload_memory", "must be at least part_size (one part buffer)")
		}
	}
	if s.Proxy != "" {
		if u, err := url.Parse(s.Proxy); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") || u.Host == "" {
			add("s3.proxy", `must be a URL such as "http://proxy.example.com:3128"`)
		}
	}
	c.checkObjectOptions(add)
}

func (c *Config) validateAuth(add func(string, string, ...any), notYet func(string)) {
	a := &c.Auth
	if a.Realm == "" || strings.ContainsAny(a.Realm, `"\`) || hasControl(a.Realm) {
		add("auth.realm", `must be non-empty, without quotes, backslashes or control characters`)
	}
	if err := checkRootTemplate(a.Root); err != nil {
		add("auth.root", "%v", err)
	} else if strings.Contains(a.Root, "{email}") && len(a.Users) > 0 {
		add("auth.root", "{email} is not available for static users ([[auth.users]]): give them a root of their own")
	}

	o := &a.OIDC
	if o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("auth.oidc.issuer", "must be an http:// or https:// URL")
		}
		if o.ClientID == "" {
			add("auth.oidc.client_id", "is required with auth.oidc.issuer")
		}
		if c.Server.PublicURL == "" {
			add("server.public_url", "is required with auth.oidc.issuer: the sign-in redirect goes to <public_url>/callback")
		}
		// OIDC users never get the whole prefix: it would contain the
		// reserved prefix where app passwords live.
		if err := auth.CheckRootTemplate(a.Root); err != nil && checkRootTemplate(a.Root) == nil {
			add("auth.root", "%v (OIDC users need a root of their own)", err)
		}
	}
	switch {
	case o.AppPasswordStore == "bucket":
	case strings.HasPrefix(o.AppPasswordStore, "local:") && len(o.AppPasswordStore) > len("local:"):
	default:
		add("auth.oidc.app_password_store", `must be "bucket" or "local:DIR"`)
	}
	if o.UsernameClaim == "" {
		add("auth.oidc.username_claim", "must not be empty")
	}
	if d, err := o.AppPasswordMaxAge.Value(); err != nil {
		add("auth.oidc.app_password_max_age", "%v", err)
	} else if d < 0 || (d > 0 && d < time.Hour) {
		add("auth.oidc.app_password_max_age", `must be at least 1h, or "0" for app passwords that never expire`)
	}
	if o.OpaqueTokens != "introspect" && o.OpaqueTokens != "userinfo" {
		add("auth.oidc.opaque_tokens", `must be "introspect" or "userinfo"`)
	}
	if o.GroupsClaim == "" {
		add("auth.oidc.groups_claim", "must not be empty")
	}
	for i, aud := range o.Audiences {
		if aud == "" {
			add(fmt.Sprintf("auth.oidc.audiences[%d]", i), "must not be empty")
		}
	}
	if o.PasswordGrant && o.Issuer == "" {
		add("auth.oidc.password_grant", "needs auth.oidc.issuer")
	}

	seen := map[string]int{}
	for i, u := range a.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		if err := auth.ValidUsername(u.Name); err != nil {
			add(key+".name", "%v", err)
		} else if j, dup := seen[strings.ToLower(u.Name)]; dup {
			add(key+".name", "duplicate user name, ignoring case (also auth.users[%d])", j)
		} else {
			seen[strings.ToLower(u.Name)] = i
		}
		if u.PasswordHash == "" {
			add(key+".password_hash", "is required: create one with `davgw hash-password`")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			add(key+".password_hash", "is not a bcrypt hash: create one with `davgw hash-password`")
		}
		if u.Root != "" {
			if err := checkRootTemplate(u.Root); err != nil {
				add(key+".root", "%v", err)
			} else if err := auth.CheckRootTemplate(u.Root); err != nil && o.Issuer != "" && o.AppPasswordStore == "bucket" {
				add(key+".root", "%v (app passwords are kept there)", err)
			} else if strings.Contains(u.Root, "{email}") {
				add(key+".root", "{email} is not available for static users")
			}
		}
	}
	for i, r := range a.Rules {
		key := fmt.Sprintf("auth.rules[%d]", i)
		if r.Group == "" {
			add(key+".group", "is required")
		}
		if r.Root != "" {
			if err := auth.CheckRootTemplate(r.Root); err != nil {
				add(key+".root", "%v", err)
			}
		}
	}
	if len(a.Rules) > 0 && o.Issuer == "" {
		add("auth.rules", "group rules apply to OIDC users: set auth.oidc.issuer")
	}
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf(`must be host:port, e.g. "127.0.0.1:8080" or ":8080"`)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535")
	}
	if strings.ContainsAny(host, "/ ") {
		return fmt.Errorf("invalid host")
	}
	return nil
}

// sameListenAddr reports whether two valid host:port listen addresses
// would collide: the same port (not 0, which picks a free one) on the same
// host, or on all interfaces for either.
func sameListenAddr(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool { ip := net.ParseIP(h); return h == "" || (ip != nil && ip.IsUnspecified()) }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

func checkDAVPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || p == "/" {
		return fmt.Errorf(`must start and end with "/" and not be "/" alone, e.g. "/dav/"`)
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, `\?#%`) || hasControl(seg) {
			return fmt.Errorf(`must be a clean path such as "/dav/" (no empty, "." or ".." segments, no "\", "?", "#" or "%%")`)
		}
	}
	if p == "/healthz/" {
		return fmt.Errorf(`"/healthz/" is reserved`)
	}
	return nil
}

// checkPrefix checks a key prefix: "" or clean segments ending in "/",
// without a leading "/".
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") {
		return fmt.Errorf(`must be "" or end in "/" without a leading "/", e.g. "gateway/"`)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Contains(seg, `\`) || hasControl(seg) {
			return fmt.Errorf(`must not have empty, "." or ".." segments, backslashes or control characters`)
		}
	}
	return nil
}

// checkRootTemplate checks a root template: known placeholders only, and a
// clean prefix once they are filled in.
func checkRootTemplate(t string) error {
	s := t
	for _, ph := range []string{"{username}", "{sub}", "{email}"} {
		s = strings.ReplaceAll(s, ph, "x")
	}
	if strings.ContainsAny(s, "{}") {
		return fmt.Errorf("unknown placeholder: use {username}, {sub} or {email}")
	}
	clean, err := auth.CleanRoot(s)
	if err != nil {
		return err
	}
	if strings.HasPrefix(clean, auth.ReservedPrefix) {
		return fmt.Errorf("must not be inside %s, which davgw reserves for itself", auth.ReservedPrefix)
	}
	return nil
}

// parseTrustedProxy reads a CIDR ("10.0.0.0/8", "fd00::/8") or a single
// address ("192.0.2.7", taken as a /32 or /128).
func parseTrustedProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR such as \"10.0.0.0/8\"", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
