package config

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// S3URL is a parsed [s3].url of the form
// s3://ACCESS_KEY_ID:SECRET@host[:port]/bucket/[prefix/] ("s3://" is HTTPS,
// "s3+http://" plain HTTP). The key and secret are percent-decoded.
type S3URL struct {
	// Endpoint is scheme://host[:port], or "" for AWS S3 hosts
	// (s3.amazonaws.com, s3.REGION.amazonaws.com).
	Endpoint string
	// Region is taken from an AWS host name, else "".
	Region string
	// PathStyle is true for custom (non-AWS) hosts.
	PathStyle bool
	// Bucket is the first path segment.
	Bucket string
	// Prefix is the rest of the path, "" or ending in "/".
	Prefix string
	// AccessKeyID comes from the user-info part.
	AccessKeyID string
	// SecretAccessKey comes from the user-info part (never print it).
	SecretAccessKey string

	scheme string // "s3" or "s3+http"
	host   string // host[:port] as written
}

// errors of ParseS3URL. They never quote the input: it holds a secret.
var (
	errS3URLScheme   = errors.New(`must start with "s3://" (HTTPS) or "s3+http://" (HTTP)`)
	errS3URLHost     = errors.New("missing or invalid host[:port] after the \"@\"")
	errS3URLUserinfo = errors.New(`credentials must be ACCESS_KEY_ID:SECRET before "@", with "/", "@", ":", "+" and "%" in the secret percent-encoded`)
	errS3URLEscape   = errors.New("invalid percent-encoding (use %XX with two hex digits)")
	errS3URLBucket   = errors.New("missing bucket: the path must be /bucket/ or /bucket/prefix/")
	errS3URLPath     = errors.New(`the path after the bucket must be empty or a prefix such as "prefix/" without empty, "." or ".." segments`)
	errS3URLQuery    = errors.New(`"?" and "#" are not allowed: percent-encode them`)

	s3URLErrors = []error{errS3URLScheme, errS3URLHost, errS3URLUserinfo, errS3URLEscape, errS3URLBucket, errS3URLPath, errS3URLQuery}
)

// ParseS3URL parses the CrushFTP-style S3 URL. Its errors never contain any
// part of the input.
func ParseS3URL(raw string) (*S3URL, error) {
	u := &S3URL{}
	var rest string
	switch {
	case strings.HasPrefix(raw, "s3://"):
		u.scheme, rest = "s3", raw[len("s3://"):]
	case strings.HasPrefix(raw, "s3+http://"):
		u.scheme, rest = "s3+http", raw[len("s3+http://"):]
	default:
		return nil, errS3URLScheme
	}
	if strings.ContainsAny(rest, "?#") {
		return nil, errS3URLQuery
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return nil, errS3URLBucket
	}
	authority, path := rest[:slash], rest[slash:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		key, secret, ok := strings.Cut(userinfo, ":")
		if !ok || key == "" || secret == "" || strings.ContainsAny(userinfo, "@/") {
			return nil, errS3URLUserinfo
		}
		var err error
		if u.AccessKeyID, err = unescape(key); err != nil {
			return nil, err
		}
		if u.SecretAccessKey, err = unescape(secret); err != nil {
			return nil, err
		}
		if hasControl(u.AccessKeyID) || hasControl(u.SecretAccessKey) {
			return nil, errS3URLUserinfo
		}
	}
	if !validHostPort(authority) {
		return nil, errS3URLHost
	}
	u.host = authority
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	virtualBucket := ""
	switch {
	case u.scheme != "s3" || !strings.HasSuffix(host, ".amazonaws.com"):
		scheme := "https://"
		if u.scheme == "s3+http" {
			scheme = "http://"
		}
		u.Endpoint, u.PathStyle = scheme+authority, true
	default:
		bucket, region, ok := splitAWSHost(host)
		switch {
		case !ok:
			// s3.dualstack.REGION..., FIPS and other AWS forms: keep the
			// endpoint, virtual-host addressing.
			u.Endpoint = "https://" + authority
		default:
			u.Region, virtualBucket = region, bucket
		}
	}
	if virtualBucket != "" {
		// BUCKET.s3[.-]REGION.amazonaws.com/[prefix/]: the path is the prefix.
		if hasControl(virtualBucket) || len(virtualBucket) < 3 {
			return nil, errS3URLBucket
		}
		u.Bucket = virtualBucket
		prefix, err := unescape(strings.TrimPrefix(path, "/"))
		if err != nil {
			return nil, err
		}
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		if err := checkPrefix(prefix); err != nil {
			return nil, errS3URLPath
		}
		u.Prefix = prefix
		return u, nil
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	bucket, err := unescape(segs[0])
	if err != nil {
		return nil, err
	}
	if bucket == "" || hasControl(bucket) || strings.ContainsAny(bucket, `/\ `) {
		return nil, errS3URLBucket
	}
	u.Bucket = bucket
	if len(segs) > 1 {
		rawPrefix := strings.Join(segs[1:], "/")
		prefix, err := unescape(rawPrefix)
		if err != nil {
			return nil, err
		}
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		if err := checkPrefix(prefix); err != nil {
			return nil, errS3URLPath
		}
		u.Prefix = prefix
	}
	return u, nil
}

// splitAWSHost splits an Amazon S3 host name into the bucket of a
// virtual-host style name ("" for path style) and the region ("" for the
// global endpoint): s3.amazonaws.com, s3.REGION.amazonaws.com,
// s3-REGION.amazonaws.com, each optionally preceded by "BUCKET.".
// ok is false for other *.amazonaws.com names.
func splitAWSHost(host string) (bucket, region string, ok bool) {
	for i := 0; i < len(host); i++ {
		if (i > 0 && host[i-1] != '.') || !strings.HasPrefix(host[i:], "s3") {
			continue
		}
		rest := strings.TrimSuffix(host[i+2:], ".amazonaws.com")
		switch {
		case rest == "":
			region = ""
		case rest[0] == '.' || rest[0] == '-':
			region = rest[1:]
			if region == "" || strings.Contains(region, ".") {
				continue
			}
		default:
			continue
		}
		if i > 0 {
			bucket = host[:i-1]
		}
		return bucket, region, true
	}
	return "", "", false
}

func unescape(s string) (string, error) {
	v, err := url.PathUnescape(s)
	if err != nil {
		return "", errS3URLEscape
	}
	return v, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func validHostPort(s string) bool {
	if s == "" {
		return false
	}
	host := s
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		h, port, err := net.SplitHostPort(s)
		if err != nil {
			return false
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
		if strings.HasPrefix(s, "[") {
			return net.ParseIP(host) != nil
		}
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// String returns the URL with the secret replaced by "***":
// s3://AKID:***@host/bucket/prefix/.
func (u *S3URL) String() string {
	var b strings.Builder
	b.WriteString(u.scheme)
	b.WriteString("://")
	if u.AccessKeyID != "" {
		b.WriteString(url.PathEscape(u.AccessKeyID))
		b.WriteString(":***@")
	}
	b.WriteString(u.host)
	b.WriteString("/")
	b.WriteString(url.PathEscape(u.Bucket))
	b.WriteString("/")
	for _, seg := range strings.Split(strings.TrimSuffix(u.Prefix, "/"), "/") {
		if seg != "" {
			b.WriteString(url.PathEscape(seg))
			b.WriteString("/")
		}
	}
	return b.String()
}

// RedactS3URL returns raw with its secret replaced by "***", or a fixed
// placeholder when raw does not parse; it never returns the secret.
func RedactS3URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := ParseS3URL(raw)
	if err != nil {
		return "(invalid s3 url, not shown)"
	}
	return u.String()
}
