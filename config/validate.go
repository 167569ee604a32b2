package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
)

// values are what the text of a Config means, each parsed once by check:
// sizes, durations, the [s3] settings merged over [s3].url, networks.
type values struct {
	bodyIdle                  time.Duration
	proxies                   []netip.Prefix
	def                       storeValues            // [s3]
	stores                    map[string]storeValues // [s3.stores.NAME]
	appPasswordMaxAge         time.Duration
	quota                     int64
	lockOwner                 int64
	memPerUser, memPerAddress int64
}

// Validate checks every key and returns all problems at once (errors.Join
// of *Problem, each naming its key), or nil. It does not touch the network
// or the file system and never quotes a secret.
func (c *Config) Validate() error {
	_, err := c.check()
	return err
}

// adder records a problem of a key.
type adder func(key, format string, args ...any)

// size parses a size once; a bad one is a problem of key. "" is 0 when
// optional, else a problem.
func (add adder) size(key string, b ByteSize, optional bool) (int64, bool) {
	if optional && b == "" {
		return 0, true
	}
	n, err := b.Bytes()
	if err != nil {
		add(key, "%v", err)
		return 0, false
	}
	return n, true
}

// duration parses a duration once; a bad one is a problem of key.
func (add adder) duration(key string, d Duration) (time.Duration, bool) {
	v, err := d.Value()
	if err != nil {
		add(key, "%v", err)
		return 0, false
	}
	return v, true
}

// check parses every value of c once and checks every rule: the values
// for the accessors, and the problems (errors.Join of *Problem).
func (c *Config) check() (values, error) {
	var ps []error
	var add adder = func(key, format string, args ...any) { ps = append(ps, problemf(key, format, args...)) }
	var v values

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
	if d, ok := add.duration("server.body_idle_timeout", c.Server.BodyIdleTimeout); ok {
		if d < time.Second {
			add("server.body_idle_timeout", `must be at least 1s, e.g. "60s"`)
		}
		v.bodyIdle = d
	}
	for i, s := range c.Server.TrustedProxies {
		p, err := parseTrustedProxy(s)
		if err != nil {
			add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%v", err)
			continue
		}
		v.proxies = append(v.proxies, p)
	}
	switch c.Server.ForwardedHeader {
	case "", gateway.HeaderXForwardedFor, gateway.HeaderForwarded:
	default:
		add("server.forwarded_header", `must be %q (nginx, Caddy, HAProxy, cloud load balancers) or %q (RFC 7239)`, gateway.HeaderXForwardedFor, gateway.HeaderForwarded)
	}

	c.checkS3(add, &v)
	c.validateAuth(add, &v)

	// [webdav]
	switch c.WebDAV.AppleFiles {
	case gateway.AppleAllow, gateway.AppleHide, gateway.AppleReject:
	default:
		add("webdav.apple_files", "must be %q, %q or %q", gateway.AppleAllow, gateway.AppleHide, gateway.AppleReject)
	}
	if c.WebDAV.MaxPropfindEntries < 0 {
		add("webdav.max_propfind_entries", "must be 0 (no cap) or more")
	}
	v.quota, _ = add.size("webdav.quota_bytes", c.WebDAV.QuotaBytes, false)

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
	if n, ok := add.size("limits.lock_owner_bytes", c.Limits.LockOwnerBytes, true); ok && n != 0 {
		if n < 256 || n > 1<<20 {
			add("limits.lock_owner_bytes", `must be between 256 and 1MiB, or "" for the default (4KiB)`)
		}
		v.lockOwner = n
	}
	for _, m := range []struct {
		key string
		b   ByteSize
		n   *int64
	}{
		{"limits.upload_memory_per_user", c.Limits.UploadMemoryPerUser, &v.memPerUser},
		{"limits.upload_memory_per_address", c.Limits.UploadMemoryPerAddress, &v.memPerAddress},
	} {
		if n, ok := add.size(m.key, m.b, true); ok && n != 0 {
			if n < s3vfs.MinPartSize {
				add(m.key, `must be at least one part (5MiB), or "" for the default`)
			}
			*m.n = n
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
	return v, errors.Join(ps...)
}

// storeValues are what one store's table ([s3] or [s3.stores.NAME])
// means, each value parsed once.
type storeValues struct {
	s3           S3Settings
	store        s3vfs.Config // what S3Config / StoreConfigs return
	roleDuration time.Duration
	abandonedAge time.Duration
	checkBucket  bool
}

// checkS3 checks [s3] (the default store) and each [s3.stores.NAME] with
// checkStore: every store states its own keys, nothing is inherited from
// [s3] but the built-in defaults.
func (c *Config) checkS3(add adder, v *values) {
	v.def = checkStore(add, "s3", &c.S3)
	if len(c.S3.Stores) > 0 {
		v.stores = make(map[string]storeValues, len(c.S3.Stores))
	}
	for name, st := range c.S3.Stores {
		key := "s3.stores." + name
		if err := auth.CheckStoreName(name); err != nil {
			add(key, "%v", err)
		}
		if st == nil {
			continue
		}
		if len(st.Stores) > 0 {
			add(key+".stores", "stores do not nest: declare every store as [s3.stores.NAME]")
		}
		v.stores[name] = checkStore(add, key, st)
	}
	if v.def.store.Bucket == s3vfs.AnyBucket {
		add("s3.bucket", `must name one bucket: the default store keeps davgw's own data (%s); give bucket = "*" to a store of [s3.stores.NAME]`, auth.ReservedPrefix)
	}
}

// checkStore parses one store's table s (key is "s3" or
// "s3.stores.NAME") once (its url, sizes, durations), merges the fields
// over the URL, and has s3vfs check the result: its problems name their
// fields, mapped here to TOML keys. Only what is particular to the file
// (the URL, the prefix, the CrushFTP iam_lookup form, an explicit 0, the
// janitor) is checked here.
func checkStore(add adder, key string, s *S3) storeValues {
	var v storeValues
	var fromURL *S3URL
	if s.URL != "" {
		u, err := ParseS3URL(s.URL)
		if err != nil {
			add(key+".url", "%v", err)
		}
		fromURL = u
	}
	v.s3 = mergeS3(s, fromURL)
	v.checkBucket = s.CheckBucket == nil || *s.CheckBucket
	if err := checkPrefix(s.Prefix); err != nil {
		add(key+".prefix", "%v", err)
	}
	if v.s3.AccessKeyID == "iam_lookup" && v.s3.SecretAccessKey != "" && v.s3.SecretAccessKey != "lookup" {
		add(key+".secret_access_key", `must be "lookup" or empty with access_key_id = "iam_lookup" (the EC2 instance role)`)
	}
	if s.UploadConcurrency == 0 {
		// 0 would be s3vfs's default; in the file it is a mistake.
		add(key+".upload_concurrency", "must be between 1 and %d", s3vfs.MaxUploadConcurrency)
	}
	if d, ok := add.duration(key+".abandoned_upload_age", s.AbandonedUploadAge); ok {
		if d != 0 && d < time.Hour {
			add(key+".abandoned_upload_age", `must be at least 1h (uploads younger than that may still be running), or "0" to turn the janitor off`)
		}
		v.abandonedAge = d
	}
	failed := map[string]bool{} // fields whose text did not parse: said already
	partSize, ok := add.size(key+".part_size", s.PartSize, false)
	failed["PartSize"] = !ok
	uploadMemory, ok := add.size(key+".upload_memory", s.UploadMemory, true)
	failed["UploadMemory"] = !ok
	v.roleDuration, ok = add.duration(key+".role_duration", s.RoleDuration)
	failed["RoleDuration"] = !ok
	if fromURL == nil && s.URL != "" {
		for f := range fromS3URL {
			failed[f] = true // the unreadable url may have held it
		}
	}

	cfg := s3vfs.Config{
		Endpoint:          v.s3.Endpoint,
		Region:            v.s3.Region,
		Bucket:            v.s3.Bucket,
		PathStyle:         v.s3.PathStyle,
		PathStyleSet:      v.s3.PathStyleSet,
		AccessKeyID:       v.s3.AccessKeyID,
		SecretAccessKey:   v.s3.SecretAccessKey,
		SessionToken:      s.SessionToken,
		Credentials:       s.Credentials,
		IMDSEndpoint:      s.IMDSEndpoint,
		IMDSv1Fallback:    s.IMDSv1Fallback,
		RoleARN:           s.RoleARN,
		ExternalID:        s.ExternalID,
		RoleSessionName:   s.RoleSessionName,
		RoleDuration:      v.roleDuration,
		STSEndpoint:       s.STSEndpoint,
		Provider:          s.Provider,
		Proxy:             s.Proxy,
		Checksums:         s.Checksums,
		PartSize:          partSize,
		UploadConcurrency: s.UploadConcurrency,
		UploadMemory:      uploadMemory,
	}
	s.objectOptions(&cfg)
	if cfg.AccessKeyID == "iam_lookup" {
		// The CrushFTP form of the instance role: no keys.
		cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
		if cfg.Credentials == "" {
			cfg.Credentials = s3vfs.CredentialsIMDS
		}
	}
	if err := cfg.Validate(); err != nil {
		name := func(field string) string { return strings.TrimPrefix(s3Key(key, field), key+".") }
		for _, e := range unjoin(err) {
			var ce *s3vfs.ConfigError
			if !errors.As(e, &ce) {
				add(key, "%v", e)
				continue
			}
			if failed[ce.Field] || slices.ContainsFunc(ce.Related, func(f string) bool { return failed[f] }) {
				continue
			}
			add(s3Key(key, ce.Field), "%s", ce.Message(name))
		}
	}

	// What the Store gets: the effective credential source, keys only for
	// static credentials, a role's duration only with the role.
	cfg.Credentials = cfg.CredentialSource()
	if cfg.Credentials != s3vfs.CredentialsStatic {
		cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken = "", "", ""
	}
	if cfg.RoleARN == "" {
		cfg.RoleDuration = 0
	}
	if cfg.Region == "" && cfg.Credentials != s3vfs.CredentialsIMDS {
		cfg.Region = DefaultRegion
	}
	v.store = cfg
	return v
}

// fromS3URL are the s3vfs fields that s3.url can give.
var fromS3URL = map[string]bool{"Endpoint": true, "Region": true, "Bucket": true, "AccessKeyID": true, "SecretAccessKey": true, "SessionToken": true, "Credentials": true}

// s3Key is the TOML key of an s3vfs.Config field in the store table
// table ("s3" or "s3.stores.NAME"): a store's table names its keys after
// the same fields.
func s3Key(table, field string) string {
	if f, ok := reflect.TypeFor[S3]().FieldByName(field); ok {
		return table + "." + f.Tag.Get("toml")
	}
	return table
}

func (c *Config) validateAuth(add adder, v *values) {
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
	if d, ok := add.duration("auth.oidc.app_password_max_age", o.AppPasswordMaxAge); ok {
		if d < 0 || (d > 0 && d < time.Hour) {
			add("auth.oidc.app_password_max_age", `must be at least 1h, or "0" for app passwords that never expire`)
		}
		v.appPasswordMaxAge = d
	}
	if o.OpaqueTokens != auth.OpaqueIntrospect && o.OpaqueTokens != auth.OpaqueUserinfo {
		add("auth.oidc.opaque_tokens", "must be %q or %q", auth.OpaqueIntrospect, auth.OpaqueUserinfo)
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

	c.checkRootStore(add, "auth.root", a.Root)
	for i, u := range a.Users {
		c.checkRootStore(add, fmt.Sprintf("auth.users[%d].root", i), u.Root)
	}
	for i, r := range a.Rules {
		c.checkRootStore(add, fmt.Sprintf("auth.rules[%d].root", i), r.Root)
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

// checkRootStore checks that the store a root names ("NAME:path") is
// declared as [s3.stores.NAME].
func (c *Config) checkRootStore(add adder, key, root string) {
	store, rest := auth.SplitRoot(root)
	if rest == root || auth.CheckStoreName(store) != nil {
		return // the default store, or a bad name (said by the root's check)
	}
	if c.S3.Stores[store] == nil {
		add(key, "names the store %q, which is not declared: add a [s3.stores.%s] table", store, store)
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
	store, s := auth.SplitRoot(t)
	if s != t {
		if err := auth.CheckStoreName(store); err != nil {
			return err
		}
	}
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
