// Package auth decides who a request comes from and which part of the bucket
// that user may reach.
//
// Security notes: an Authenticator never reveals whether a user name exists
// (unknown users cost the same time as wrong passwords), and a Principal's
// Root is always a clean relative key prefix ("users/alice/") that cannot
// climb out of the configured [s3].prefix.
package auth

import (
	"net/http"
	"time"
)

// Principal is an authenticated user and the root of the bucket it lands in.
type Principal struct {
	// Username is the sign-in name, for logs.
	Username string
	// Store is the named store ([s3.stores.NAME]) the user's whole
	// namespace lives in, from the root's "NAME:" (SplitRoot); "" is the
	// default store ([s3]).
	Store string
	// Root is the user's key prefix below the store's prefix, ending in "/"
	// (or "" for the whole prefix). It has no empty, "." or ".." segment.
	Root string
	// ReadOnly principals get 403 on every write method.
	ReadOnly bool
}

// Authenticator checks a request's credentials.
//
// ok == false with err == nil means the credentials are missing or wrong
// (the caller answers 401 with a WWW-Authenticate challenge); err != nil means
// the check itself failed (the caller answers 5xx and logs err).
type Authenticator interface {
	Authenticate(r *http.Request) (p Principal, ok bool, err error)
}

// RateLimitError is returned by an Authenticator that refuses to check
// credentials because too many attempts failed (per user or per client
// address). The caller answers 429 with Retry-After.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return "auth: too many failed attempts; retry after " + e.RetryAfter.String()
}

// Challenger is implemented by Authenticators that want more than the Basic
// challenge on a 401 (for example a Bearer challenge as well).
type Challenger interface {
	Challenges(realm string) []string
}
