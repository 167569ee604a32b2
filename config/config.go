// Package config reads davgw's TOML configuration (SPEC section 2).
//
// Loading happens in three steps: a strict decode (an unknown key is an
// error naming the key and its line), ${ENV_VAR} expansion of string values
// (an unset variable is an error naming the key), then one pass that parses
// every size, duration, URL and network once into typed values and checks
// every rule, reporting every problem at once, each naming its key. The S3
// settings are checked by s3vfs.Config.Validate, whose fields this package
// maps to TOML keys.
//
// Security notes: secrets (the S3 secret key, the secret inside [s3].url,
// session tokens, the SSE-C key, the OIDC client secret) never appear in an error or in
// anything this package prints; S3URL.String shows the URL with "***" in
// place of the secret.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/s3vfs"
)

// Defaults of SPEC section 2. Each is defined once: the ones a package
// applies to its own zero values come from that package (gateway, s3vfs,
// auth); the rest belong to the config file. Default fills them in, sizes
// and durations written as text.
const (
	DefaultListen             = "127.0.0.1:8080"
	DefaultDAVPrefix          = gateway.DefaultDAVPrefix
	DefaultRealm              = gateway.DefaultRealm
	DefaultAppleFiles         = gateway.AppleAllow
	DefaultRegion             = s3vfs.DefaultRegion
	DefaultRoleSessionName    = s3vfs.DefaultRoleSessionName
	DefaultChecksums          = s3vfs.ChecksumsWhenRequired
	DefaultUploadConcurrency  = s3vfs.DefaultUploadConcurrency
	DefaultRootTemplate       = "users/{username}/"
	DefaultUsernameClaim      = auth.DefaultUsernameClaim
	DefaultGroupsClaim        = auth.DefaultGroupsClaim
	DefaultAppPasswordStore   = "bucket"
	DefaultOpaqueTokens       = auth.OpaqueIntrospect
	DefaultMaxPropfindEntries = 0 // no cap: listings stream in bounded memory
	DefaultLockStore          = "memory"
)

// Config is the whole configuration file.
type Config struct {
	// Server is [server].
	Server Server `toml:"server"`
	// S3 is [s3].
	S3 S3 `toml:"s3"`
	// Auth is [auth] with [auth.oidc], [[auth.users]] and [[auth.rules]].
	Auth Auth `toml:"auth"`
	// WebDAV is [webdav].
	WebDAV WebDAV `toml:"webdav"`
	// Locks is [locks].
	Locks Locks `toml:"locks"`
	// Limits is [limits].
	Limits Limits `toml:"limits"`

	// v holds what Parse read from the text above, each value parsed once:
	// what the accessors (S3Config, BodyIdleTimeout...) return.
	v values
}

// Server is the [server] table: where and how the gateway listens.
type Server struct {
	// Listen is the host:port of the WebDAV listener.
	Listen string `toml:"listen"`
	// PublicURL is how clients reach the gateway (scheme://host[:port]).
	PublicURL string `toml:"public_url"`
	// DAVPrefix is the URL path of the WebDAV namespace ("/dav/").
	DAVPrefix string `toml:"dav_prefix"`
	// TLSCert and TLSKey, both set, make the listener serve HTTPS.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the PEM private key matching TLSCert.
	TLSKey string `toml:"tls_key"`
	// AdminListen is the host:port of the admin listener (/metrics,
	// /healthz, /readyz); "" = none. It has no authentication.
	AdminListen string `toml:"admin_listen"`
	// BodyIdleTimeout is how long a request body may send nothing before
	// its connection is cut; XML bodies must arrive whole within it.
	BodyIdleTimeout Duration `toml:"body_idle_timeout"`
	// TrustedProxies are the CIDRs (or single addresses) of reverse
	// proxies whose X-Forwarded-For / Forwarded headers name the client;
	// [] = none: the peer is the client.
	TrustedProxies []string `toml:"trusted_proxies"`
	// ForwardedHeader is the one header the trusted proxies set to name
	// the client: "X-Forwarded-For" (the default) or "Forwarded".
	ForwardedHeader string `toml:"forwarded_header"`
}

// S3 is the [s3] table: the bucket the gateway serves and how to reach it.
type S3 struct {
	// URL is the CrushFTP-style s3://KEY:SECRET@host[:port]/bucket/[prefix/];
	// fields set one by one below win over it.
	URL string `toml:"url"`
	// Endpoint is the S3 endpoint URL; "" = AWS.
	Endpoint string `toml:"endpoint"`
	// Region is the signing region; "" = from an AWS host in URL, else
	// the instance's region with iam_lookup, else us-east-1.
	Region string `toml:"region"`
	// Bucket is the bucket name.
	Bucket string `toml:"bucket"`
	// Prefix is the key prefix everything stays under ("" or ending in "/").
	Prefix string `toml:"prefix"`
	// PathStyle forces path-style addressing (true) or virtual-host
	// addressing (false). Unset: true when the endpoint comes from a custom
	// host in URL or the provider preset is not "aws", else false.
	PathStyle *bool `toml:"path_style"`
	// AccessKeyID is the static access key; "iam_lookup" (with the secret
	// "lookup") selects the EC2 instance role.
	AccessKeyID string `toml:"access_key_id"`
	// SecretAccessKey is the static secret key (secret).
	SecretAccessKey string `toml:"secret_access_key"`
	// SessionToken is the static session token (secret).
	SessionToken string `toml:"session_token"`
	// Credentials selects the credential source: "" (static if keys are
	// given, else the AWS SDK default chain), "static", "default" or
	// "iam_lookup" (the EC2 instance role through IMDS).
	Credentials string `toml:"credentials"`
	// IMDSv1Fallback allows IMDSv1 after IMDSv2 failed.
	IMDSv1Fallback bool `toml:"imds_v1_fallback"`
	// IMDSEndpoint overrides the metadata service address.
	IMDSEndpoint string `toml:"imds_endpoint"`
	// RoleARN is assumed with STS on top of the credentials.
	RoleARN string `toml:"role_arn"`
	// ExternalID goes with RoleARN.
	ExternalID string `toml:"external_id"`
	// RoleSessionName goes with RoleARN.
	RoleSessionName string `toml:"role_session_name"`
	// RoleDuration goes with RoleARN.
	RoleDuration Duration `toml:"role_duration"`
	// STSEndpoint overrides the STS endpoint.
	STSEndpoint string `toml:"sts_endpoint"`
	// CheckBucket = false skips the bucket check at start-up.
	CheckBucket *bool `toml:"check_bucket"`
	// Checksums is "when_required" or "when_supported".
	Checksums string `toml:"checksums"`
	// PartSize is the multipart part size ("16MiB").
	PartSize ByteSize `toml:"part_size"`
	// UploadConcurrency is the number of parts uploaded at once per PUT.
	UploadConcurrency int `toml:"upload_concurrency"`
	// UploadMemory caps the part buffers of all uploads together ("1GiB");
	// "" = max(1GiB, 2 x part_size x upload_concurrency).
	UploadMemory ByteSize `toml:"upload_memory"`
	// Proxy is an HTTP(S) proxy URL for S3 and STS.
	Proxy string `toml:"proxy"`
	// Provider is a preset for a store's quirks, one of
	// s3vfs.ProviderNames; "" = none.
	Provider string `toml:"provider"`
	// AbandonedUploadAge is the age after which the janitor aborts a
	// multipart upload under the prefix ("24h"; "0" = janitor off).
	AbandonedUploadAge Duration `toml:"abandoned_upload_age"`
	// SSE asks S3 to encrypt every object written: "AES256" (SSE-S3),
	// "aws:kms" (SSE-KMS) or "" (nothing asked: the bucket's default).
	SSE string `toml:"sse"`
	// SSEKMSKeyID is the KMS key of sse = "aws:kms"; "" = aws/s3.
	SSEKMSKeyID string `toml:"sse_kms_key_id"`
	// SSECustomerKey is an SSE-C key, the base64 of 32 bytes (secret:
	// give it as "${ENV_VAR}" or use sse_c_key_file).
	SSECustomerKey string `toml:"sse_c_key"`
	// SSECustomerKeyFile names a file holding the SSE-C key (32 raw bytes
	// or their base64).
	SSECustomerKeyFile string `toml:"sse_c_key_file"`
	// StorageClass is the storage class of every object written; "" =
	// the bucket's default.
	StorageClass string `toml:"storage_class"`
	// ACL is a canned ACL sent with every object written; "" = none.
	ACL string `toml:"acl"`
	// Stores are the named stores of [s3.stores.NAME] (only in [s3]):
	// each table has every key of [s3] and inherits none of its values,
	// only the built-in defaults. A root names one as "NAME:path"; bucket =
	// "*" serves every bucket its credentials can list.
	Stores map[string]*S3 `toml:"stores"`
}

// Auth is the [auth] table with its sub-tables.
type Auth struct {
	// Realm is the Basic auth realm.
	Realm string `toml:"realm"`
	// Root is the per-user root template under [s3].prefix.
	Root string `toml:"root"`
	// OIDC is [auth.oidc].
	OIDC OIDC `toml:"oidc"`
	// Users are the static users of [[auth.users]].
	Users []User `toml:"users"`
	// Rules are the group rules of [[auth.rules]] (OIDC users).
	Rules []Rule `toml:"rules"`
}

// OIDC is the [auth.oidc] table: sign-in with an OpenID Connect provider.
type OIDC struct {
	// Issuer is the OpenID Connect issuer URL; "" = OIDC off.
	Issuer string `toml:"issuer"`
	// ClientID is the gateway's OAuth client.
	ClientID string `toml:"client_id"`
	// ClientSecret is the OAuth client secret (secret).
	ClientSecret string `toml:"client_secret"`
	// Audiences are the accepted `aud` values; empty = [ClientID].
	Audiences []string `toml:"audiences"`
	// UsernameClaim names the claim that gives the user name.
	UsernameClaim string `toml:"username_claim"`
	// GroupsClaim names the claim that lists the groups.
	GroupsClaim string `toml:"groups_claim"`
	// PasswordGrant checks Basic passwords with the IdP's password grant.
	PasswordGrant bool `toml:"password_grant"`
	// AppPasswords enables per-device app passwords (default true).
	AppPasswords *bool `toml:"app_passwords"`
	// AppPasswordStore is where app passwords are kept: "bucket" (under
	// <s3.prefix>.davgw/app-passwords/, shared by every gateway on the
	// bucket) or "local:DIR" (a directory of this machine).
	AppPasswordStore string `toml:"app_password_store"`
	// AppPasswordMaxAge is how long an app password works after it was
	// created ("2160h" = 90 days; "0" = forever).
	AppPasswordMaxAge Duration `toml:"app_password_max_age"`
	// OpaqueTokens is how opaque Bearer tokens are checked: "introspect"
	// (at the IdP's introspection_endpoint; refused without one) or
	// "userinfo" (any token userinfo accepts, whichever client it is for).
	OpaqueTokens string `toml:"opaque_tokens"`
}

// User is one [[auth.users]] entry.
type User struct {
	// Name is the sign-in name ([A-Za-z0-9._@-], not starting with ".").
	Name string `toml:"name"`
	// PasswordHash is a bcrypt hash from `davgw hash-password`.
	PasswordHash string `toml:"password_hash"`
	// Root overrides [auth].root for this user.
	Root string `toml:"root"`
}

// Rule is one [[auth.rules]] entry: first match by group wins.
type Rule struct {
	// Group is the group the rule matches.
	Group string `toml:"group"`
	// Root overrides the root of matching users.
	Root string `toml:"root"`
	// ReadOnly makes matching users read-only.
	ReadOnly bool `toml:"read_only"`
}

// WebDAV is the [webdav] table.
type WebDAV struct {
	// AppleFiles is "allow", "hide" (stored, not listed) or "reject" (not
	// stored; reads of them and of Finder's probe names answer 404 at once).
	AppleFiles string `toml:"apple_files"`
	// MaxPropfindEntries caps a Depth 1 listing; 0 = no cap.
	MaxPropfindEntries int `toml:"max_propfind_entries"`
	// QuotaBytes is the per-user quota reported by RFC 4331; uploads past
	// it answer 507. 0 = none.
	QuotaBytes ByteSize `toml:"quota_bytes"`
}

// Limits is the [limits] table: what one user or one client address may
// take of the gateway, so that no client can starve the others.
type Limits struct {
	// UploadsPerUser and UploadsPerAddress cap running PUTs (429 beyond);
	// 0 = the gateway's defaults (32 and 64).
	UploadsPerUser    int `toml:"uploads_per_user"`
	UploadsPerAddress int `toml:"uploads_per_address"`
	// UploadMemoryPerUser and UploadMemoryPerAddress cap the part buffers
	// of those uploads within [s3].upload_memory; "" = a quarter and a
	// half of it.
	UploadMemoryPerUser    ByteSize `toml:"upload_memory_per_user"`
	UploadMemoryPerAddress ByteSize `toml:"upload_memory_per_address"`
	// LocksPerUser caps the WebDAV locks one user root holds (429
	// beyond); 0 = the gateway's default (1000).
	LocksPerUser int `toml:"locks_per_user"`
	// LockOwnerBytes caps a lock's DAV:owner XML (413 beyond); "" = the
	// gateway's default (4KiB).
	LockOwnerBytes ByteSize `toml:"lock_owner_bytes"`
	// PendingSignInsPerAddress and PendingSignIns cap the browser
	// sign-ins in progress per client address (429 beyond) and in all (503
	// beyond); 0 = the defaults (10 and 10000).
	PendingSignInsPerAddress int `toml:"pending_sign_ins_per_address"`
	PendingSignIns           int `toml:"pending_sign_ins"`
	// XMLDepth and XMLElements bound the nesting and the element count of
	// a PROPFIND, PROPPATCH or LOCK body (400 beyond); 0 = the defaults
	// (32 and 20000).
	XMLDepth    int `toml:"xml_depth"`
	XMLElements int `toml:"xml_elements"`
	// RangesPerRequest is the most ranges a GET may ask for; past it the
	// whole file is answered (200); 0 = the default (8).
	RangesPerRequest int `toml:"ranges_per_request"`
	// PasswordChecks and PasswordChecksWaiting bound the bcrypt checks of
	// [[auth.users]] passwords running at once and waiting for a turn (503
	// beyond); 0 = one per CPU less one (at least one) and 64.
	PasswordChecks        int `toml:"password_checks"`
	PasswordChecksWaiting int `toml:"password_checks_waiting"`
}

// Locks is the [locks] table.
type Locks struct {
	// Store is "memory" or a redis:// (rediss:// for TLS) URL whose Redis
	// several gateways share, e.g. "redis://:password@host:6379/0".
	Store string `toml:"store"`
}

// Default returns a Config with every default of SPEC section 2 filled in.
func Default() *Config {
	return &Config{
		Server: Server{Listen: DefaultListen, DAVPrefix: DefaultDAVPrefix, BodyIdleTimeout: durationText(gateway.DefaultBodyIdleTimeout)},
		S3: S3{
			RoleSessionName:   DefaultRoleSessionName,
			RoleDuration:      durationText(s3vfs.DefaultRoleDuration),
			Checksums:         DefaultChecksums,
			PartSize:          sizeText(s3vfs.DefaultPartSize),
			UploadConcurrency: DefaultUploadConcurrency,

			AbandonedUploadAge: durationText(s3vfs.DefaultAbandonedUploadAge),
		},
		Auth: Auth{
			Realm: DefaultRealm,
			Root:  DefaultRootTemplate,
			OIDC: OIDC{UsernameClaim: DefaultUsernameClaim, GroupsClaim: DefaultGroupsClaim, AppPasswordStore: DefaultAppPasswordStore,
				AppPasswordMaxAge: durationText(auth.DefaultAppPasswordMaxAge), OpaqueTokens: DefaultOpaqueTokens},
		},
		WebDAV: WebDAV{AppleFiles: DefaultAppleFiles, MaxPropfindEntries: DefaultMaxPropfindEntries, QuotaBytes: "0"},
		Locks:  Locks{Store: DefaultLockStore},
	}
}

// storeDefaults gives the keys of [s3.stores.NAME] that the table leaves
// out the defaults of [s3] (Default), never [s3]'s own values: each store
// states what it needs.
func storeDefaults(md toml.MetaData, name string, st *S3) {
	if st == nil {
		return
	}
	def := reflect.ValueOf(Default().S3)
	v := reflect.ValueOf(st).Elem()
	t := v.Type()
	for i := range t.NumField() {
		key := strings.Split(t.Field(i).Tag.Get("toml"), ",")[0]
		if def.Field(i).IsZero() || md.IsDefined("s3", "stores", name, key) {
			continue
		}
		v.Field(i).Set(def.Field(i))
	}
}

// LoadFile reads and checks the config file at path. See Parse.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, os.LookupEnv)
}

// Parse decodes a TOML document over the defaults, expands ${ENV_VAR}
// references with lookupEnv, and validates the result. The error, if any,
// lists every problem found (unknown keys, unset variables, invalid values),
// joined with errors.Join; each is a *Problem naming its key. The returned
// Config is nil when the document is not valid TOML or has any problem.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	c := Default()
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, decodeError(err)
	}
	var problems []error
	undecoded := md.Undecoded()
	sort.Slice(undecoded, func(i, j int) bool { return undecoded[i].String() < undecoded[j].String() })
	for _, k := range undecoded {
		// A table or array of tables that is itself unknown is reported
		// once, not for each key inside it.
		if parentUndecoded(k, undecoded) {
			continue
		}
		p := &Problem{Key: k.String(), Msg: "unknown key"}
		if line := findKeyLine(data, k); line > 0 {
			p.Line = line
		}
		problems = append(problems, p)
	}
	for name, st := range c.S3.Stores {
		storeDefaults(md, name, st)
	}
	problems = append(problems, expandEnv(c, lookupEnv)...)
	v, err := c.check()
	if err != nil {
		problems = append(problems, unjoin(err)...)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	c.v = v
	return c, nil
}

// Problem is one thing wrong with the config, naming its key.
type Problem struct {
	// Key is the dotted key, e.g. "s3.part_size" or "auth.users[1].name".
	Key string
	// Line is the line of the key in the file, 0 when unknown.
	Line int
	// Msg says what is wrong; it never contains a secret value.
	Msg string
}

// Error formats the problem as `KEY: MSG` or, for unknown keys,
// `unknown key "KEY" (line N)`.
func (p *Problem) Error() string {
	if p.Msg == "unknown key" {
		if p.Line > 0 {
			return fmt.Sprintf("unknown key %q (line %d)", p.Key, p.Line)
		}
		return fmt.Sprintf("unknown key %q", p.Key)
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", p.Key, p.Line, p.Msg)
	}
	return p.Key + ": " + p.Msg
}

func problemf(key, format string, args ...any) *Problem {
	return &Problem{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// unjoin splits an errors.Join result back into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// decodeError rewrites a TOML syntax or type error without quoting the
// offending value (which could be a secret): only the position and the kind
// of problem remain.
func decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := redactQuoted(pe.Message)
		if pe.LastKey != "" {
			return &Problem{Key: pe.LastKey, Line: pe.Position.Line, Msg: msg}
		}
		if pe.Position.Line > 0 {
			return fmt.Errorf("config: TOML syntax error on line %d: %s", pe.Position.Line, msg)
		}
		return fmt.Errorf("config: TOML syntax error: %s", msg)
	}
	// Type errors: `toml: line N (last key "KEY"): MESSAGE`. Key names are
	// not secret; the rest is redacted.
	if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Problem{Key: m[2], Line: line, Msg: redactQuoted(m[3])}
	}
	return fmt.Errorf("config: %s", redactQuoted(err.Error()))
}

var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// redactQuoted removes quoted strings from a library error message; key
// names in such messages are quoted too, but values can be secrets.
func redactQuoted(msg string) string {
	var b strings.Builder
	in := false
	for _, r := range msg {
		switch {
		case r == '"' && !in:
			in = true
			b.WriteString(`"…`)
		case r == '"' && in:
			in = false
			b.WriteRune('"')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func parentUndecoded(k toml.Key, all []toml.Key) bool {
	for _, o := range all {
		if len(o) < len(k) && strings.HasPrefix(k.String()+".", o.String()+".") {
			return true
		}
	}
	return false
}

// findKeyLine finds the line that defines key k by following table headers;
// 0 when it cannot tell.
func findKeyLine(data []byte, k toml.Key) int {
	want := k.String()
	table := ""
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		if strings.HasPrefix(s, "[") {
			h := strings.Trim(strings.SplitN(s, "#", 2)[0], " \t")
			h = strings.TrimSpace(strings.Trim(h, "[]"))
			table = normalizeKey(h)
			if table == want {
				return i + 1
			}
			continue
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			continue
		}
		full := normalizeKey(s[:eq])
		if table != "" {
			full = table + "." + full
		}
		if full == want || strings.HasPrefix(full, want+".") {
			return i + 1
		}
	}
	return 0
}

func normalizeKey(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}
