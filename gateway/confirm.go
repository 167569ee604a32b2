package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/locks"
)

// confirmLocks evaluates the If header (RFC 4918 section 10.4) for a request
// that modifies src (and dst, for COPY/MOVE; either may be ""), including
// the ETag conditions that x/net/webdav ignores, and makes sure no lock held
// by someone else covers src or dst. Untagged If lists apply to the
// request URI. deep: the request may change everything below src or dst (a
// folder DELETE, an overwriting COPY or MOVE), so a lock on any member
// blocks it too. It returns a release function to call when the request is
// done, or the failure to answer (400, 412, 423, 503).
func (rq *request) confirmLocks(src, dst string, deep bool) (release func(), err error) {
	ls := rq.locks
	now := time.Now()
	tokens, err := rq.evalIf()
	if err != nil {
		return nil, err
	}

	// Every lock covering src or dst must be one whose token was submitted.
	if len(tokens) > 0 {
		if rel, err := ls.Confirm(now, src, dst, tokens...); err == nil {
			return rel, nil
		}
	}
	var releases []func()
	releaseAll := func() {
		for _, f := range releases {
			f()
		}
	}
	for _, name := range []string{src, dst} {
		if name == "" {
			continue
		}
		if len(tokens) > 0 {
			if rel, err := ls.Confirm(now, name, "", tokens...); err == nil {
				releases = append(releases, rel)
				continue
			}
		}
		// Not covered by a submitted token: it must not be locked at all.
		// A temporary zero-depth lock both tests that and keeps others from
		// locking it while this request runs.
		tok, err := rq.requestLock(name, deep)
		if err != nil {
			releaseAll()
			return nil, err
		}
		releases = append(releases, func() { _ = ls.Unlock(now, tok) })
	}
	return releaseAll, nil
}

// evalIf evaluates the request's If header (RFC 4918 section 10.4), ETag
// conditions included: 400 when it does not parse, 412 when none of its
// lists holds. It returns the lock tokens the header submits (none without
// a header).
func (rq *request) evalIf() (tokens []webdav.Condition, err error) {
	hdr := rq.r.Header.Get("If")
	if hdr == "" {
		return nil, nil
	}
	ih, ok := parseIfHeader(hdr)
	if !ok {
		return nil, failWith(http.StatusBadRequest, errors.New("bad If header"))
	}
	matched := false
	for _, l := range ih.lists {
		res := rq.name
		if l.resourceTag != "" {
			name, ok := rq.nameFromURL(l.resourceTag)
			if !ok {
				continue
			}
			res = name
		}
		holds, err := rq.listHolds(res, l.conditions)
		if err != nil {
			return nil, err // a lock store outage: 503
		}
		if holds {
			matched = true
		}
		for _, c := range l.conditions {
			if c.Token != "" && !c.Not {
				tokens = append(tokens, webdav.Condition{Token: c.Token})
			}
		}
	}
	if !matched {
		return nil, failWith(http.StatusPreconditionFailed, errors.New("no list of the If header holds"))
	}
	return tokens, nil
}

// busyWait is how long a write waits for another request's temporary lock
// on the same name (two clients saving one file at once) before it gets
// 503 with Retry-After: no 423 unless a client holds a lock.
const busyWait = 5 * time.Second

// errBusy is the answer past busyWait: another request is writing the name.
var errBusy = errors.New("another request is writing this name")

// requestLock takes the request's temporary lock on name (deep: on what is
// below it too). A conflict with a client's lock on name or above it, or
// with any lock below it, is 423 at once; one with another request's
// temporary lock on name or above is waited out for up to busyWait (the
// later write then wins), then 503 with Retry-After.
func (rq *request) requestLock(name string, deep bool) (token string, err error) {
	ctx := rq.r.Context()
	deadline := time.Now().Add(busyWait)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		now := time.Now()
		tok, err := rq.locks.Create(now, webdav.LockDetails{Root: name, Duration: -1, ZeroDepth: !deep})
		switch {
		case err == nil:
			return tok, nil
		case err != webdav.ErrLocked:
			return "", err // statusFor: 503 for a lock store outage
		case len(rq.locks.Discover(now, name)) > 0 || (deep && rq.lockedBelow(now, name)):
			return "", failWith(webdav.StatusLocked, fmt.Errorf("%s: %w", name, err))
		case now.After(deadline):
			return "", failWith(http.StatusServiceUnavailable, fmt.Errorf("%s: %w", name, errBusy))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(pause):
		}
	}
}

// lockedBelow reports, for a deep lock that conflicted, whether the
// conflict lies below name (a member's lock, which discover does not
// list): name itself then takes a zero-depth lock. Such a conflict
// answers 423 at once, as it may be a client's lock.
func (rq *request) lockedBelow(now time.Time, name string) bool {
	tok, err := rq.locks.Create(now, webdav.LockDetails{Root: name, Duration: -1, ZeroDepth: true})
	if err != nil {
		return false
	}
	_ = rq.locks.Unlock(now, tok)
	return true
}

// listHolds reports whether every condition of one If list is true for the
// resource name. An error is a lock store outage: nothing can be said.
func (rq *request) listHolds(name string, conds []webdav.Condition) (bool, error) {
	for _, c := range conds {
		var holds bool
		if c.Token != "" {
			rel, err := rq.locks.Confirm(time.Now(), name, "", webdav.Condition{Token: c.Token})
			switch {
			case err == nil:
				rel()
				holds = true
			case errors.Is(err, locks.ErrStoreUnavailable):
				return false, err
			}
		} else {
			holds = rq.etagMatches(name, c.ETag)
		}
		if holds == c.Not {
			return false, nil
		}
	}
	return true, nil
}

func (rq *request) etagMatches(name, etag string) bool {
	fi, err := rq.fs.Lookup(rq.r.Context(), name, false)
	if err != nil || fi.IsDir() {
		return false
	}
	have, err := fi.ETag(rq.r.Context())
	if err != nil {
		return false
	}
	return strings.TrimPrefix(have, "W/") == strings.TrimPrefix(etag, "W/")
}

// nameFromURL maps an absolute or absolute-path URL of this server (an If
// resource tag or a Destination header) to a clean name in the user's
// namespace. ok is false for another host or a path outside the WebDAV
// prefix.
func (rq *request) nameFromURL(raw string) (name string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	if !rq.g.sameServer(u.Host, rq.r) {
		return "", false
	}
	name, ok = rq.g.davName(u.Path)
	if !ok {
		return "", false
	}
	name, err = rq.localName(name)
	return name, err == nil
}

// preconfirmed is the LockSystem handed to x/net/webdav for PROPPATCH after
// confirmLocks has evaluated the If header (with ETags, which x/net
// ignores) and holds the needed locks: its Confirm succeeds, and the
// temporary lock x/net takes when there is no If header is a no-op.
type preconfirmed struct {
	webdav.LockSystem
}

const preconfirmedToken = "davgw:preconfirmed"

func (preconfirmed) Confirm(time.Time, string, string, ...webdav.Condition) (func(), error) {
	return func() {}, nil
}

func (p preconfirmed) Create(now time.Time, details webdav.LockDetails) (string, error) {
	if details.Duration < 0 && details.ZeroDepth {
		return preconfirmedToken, nil
	}
	return p.LockSystem.Create(now, details)
}

func (p preconfirmed) Unlock(now time.Time, token string) error {
	if token == preconfirmedToken {
		return nil
	}
	return p.LockSystem.Unlock(now, token)
}
