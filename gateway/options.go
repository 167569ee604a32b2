package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/locks"
	"github.com/davgw/davgw/s3vfs"
)

// Options assemble a Gateway.
type Options struct {
	// Store is the S3 bucket the gateway serves.
	Store *s3vfs.Store
	// Prefix is [s3].prefix: every key the gateway touches starts with it.
	// "" or ending in "/".
	Prefix string
	// Stores are the named stores ([s3.stores.NAME]) by name: a
	// Principal whose Store names one lives in it; Store and Prefix are
	// the default store ("").
	Stores map[string]NamedStore
	// DAVPrefix is the URL path of the WebDAV namespace; "" =
	// DefaultDAVPrefix.
	DAVPrefix string
	// Auth authenticates every WebDAV request except OPTIONS.
	Auth auth.Authenticator
	// Realm is the Basic auth realm; "" = DefaultRealm.
	Realm string
	// Logger receives one line per request; nil = slog.Default().
	Logger *slog.Logger
	// PublicURL is how clients reach the gateway ([server].public_url).
	// Destination headers and If resource tags may name its host as well as
	// the request's Host.
	PublicURL string
	// Web serves every path outside DAVPrefix except /healthz, /readyz and
	// OPTIONS (the sign-in and app-password pages). nil = 404.
	Web http.Handler
	// Ready reports readiness for /readyz (nil = always ready): for example
	// the identity provider being unreachable.
	Ready func() error
	// AppleFiles is the [webdav].apple_files policy for ._* and .DS_Store:
	// AppleAllow (default), AppleHide or AppleReject.
	AppleFiles string
	// QuotaBytes is each user's quota ([webdav].quota_bytes); 0 = none. It
	// is reported with RFC 4331's properties, and uploads past it get 507.
	QuotaBytes int64
	// BodyIdleTimeout is [server].body_idle_timeout (DefaultBodyIdleTimeout
	// when 0): a request body that sends nothing for this long is cut and
	// its connection closed; one that keeps flowing never is. XML bodies
	// (PROPFIND, PROPPATCH, LOCK) must arrive whole within it, and a body
	// the gateway does not read (a refused sign-in) gets drainWindow.
	BodyIdleTimeout time.Duration
	// Uploads limits the uploads of one user and of one client address
	// ([limits]); zero fields take the defaults of UploadLimits.
	Uploads UploadLimits
	// Requests bounds what one request may ask of the gateway ([limits]);
	// zero fields take the defaults of RequestLimits.
	Requests RequestLimits
	// MaxPropfindEntries caps a Depth 1 listing; 0 = no cap (listings
	// stream in bounded memory). Past it PROPFIND answers 507 when it can
	// still choose the status, else it cuts the answer.
	MaxPropfindEntries int
	// Metrics, when set, are filled by every request ([server].admin_listen
	// serves them with AdminHandler); nil = no metrics.
	Metrics *Metrics
	// TrustedProxies ([server].trusted_proxies) are the peers whose
	// X-Forwarded-For and Forwarded headers name the client; nil = the
	// peer is the client. The client address feeds the sign-in limits, the
	// per-address upload shares and the log line.
	TrustedProxies TrustedProxies
	// ForwardedHeader ([server].forwarded_header) is the one header the
	// trusted proxies set: HeaderXForwardedFor ("" = it) or
	// HeaderForwarded.
	ForwardedHeader string
	// Locks is the lock table ([locks].store); nil = a new in-memory one.
	// Gateways that share one (locks.NewRedis, or the same value in
	// tests) share WebDAV locks.
	Locks *locks.Table
}

// UploadLimits keep one user, or one client address, from taking the
// upload capacity of everyone: a PUT past UsersUploads or AddressUploads
// running uploads answers 429 at once, and one whose part buffers cannot
// get memory within the user's or the address's share in time answers 429
// too (the caller's own uploads hold it), never touching the memory other
// users' uploads need.
type UploadLimits struct {
	// PerUser and PerAddress are the running uploads allowed (default
	// DefaultUploadsPerUser, DefaultUploadsPerAddress).
	PerUser, PerAddress int
	// MemoryPerUser and MemoryPerAddress are the bytes of part buffers
	// allowed (default a quarter and a half of the Store's upload memory,
	// never less than one part).
	MemoryPerUser, MemoryPerAddress int64
}

// Defaults of Options: the WebDAV namespace and the Basic realm
// ([server].dav_prefix, [auth].realm).
const (
	DefaultDAVPrefix = "/dav/"
	DefaultRealm     = "davgw"
)

// Defaults of UploadLimits.
const (
	DefaultUploadsPerUser    = 32
	DefaultUploadsPerAddress = 64
)

// RequestLimits bound the work one request can make: x/net/webdav decodes
// XML bodies recursively and keeps every element, so a 1 MiB body of
// nested elements took gigabytes (issue 10, F5), and each range of a GET
// is an S3 read (F3). No WebDAV client nests deeper than a few levels,
// sends thousands of elements or asks for more than a couple of ranges.
type RequestLimits struct {
	// XMLDepth and XMLElements bound the nesting and the element count of
	// a PROPFIND, PROPPATCH or LOCK body; a body past either answers 400
	// naming the bound (defaults DefaultXMLDepth, DefaultXMLElements).
	XMLDepth, XMLElements int
	// Ranges is the most ranges one GET may ask for; past it the Range
	// header is ignored and the whole file is answered with 200 (RFC 9110
	// allows it), so one request cannot make thousands of S3 reads
	// (default DefaultRanges).
	Ranges int
}

// Defaults of RequestLimits.
const (
	DefaultXMLDepth    = 32
	DefaultXMLElements = 20000
	DefaultRanges      = 8
)

// withDefaults fills the zero fields.
func (l RequestLimits) withDefaults() RequestLimits {
	if l.XMLDepth <= 0 {
		l.XMLDepth = DefaultXMLDepth
	}
	if l.XMLElements <= 0 {
		l.XMLElements = DefaultXMLElements
	}
	if l.Ranges <= 0 {
		l.Ranges = DefaultRanges
	}
	return l
}
