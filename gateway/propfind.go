package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/davgw/davgw/davfs"
)

// propfind answers PROPFIND itself (not through x/net's Handler): Depth 0
// describes the target, Depth 1 streams the folder's listing as S3's pages
// arrive (see davfs.Listing), so that the first bytes leave after the
// first page and memory does not grow with the folder. Depth infinity (or
// none) on a folder is refused.
//
// Everything that can fail before the answer starts (the body, the target,
// the first page, the folder's index) gets an honest status. A failure
// after the 207 went out cuts the connection instead of ending the XML: a
// client must never take part of a listing for all of it (a sync tool
// would delete what it did not see).
func (rq *request) propfind() error {
	pf, body, depth, err := rq.readPropfind()
	if err != nil {
		return err
	}
	ctx := rq.propfindContext(pf, body)

	var (
		fi   *davfs.FileInfo
		list *davfs.Listing
	)
	if depth == "1" {
		fi, list, err = rq.fs.OpenListing(ctx, rq.name, rq.slash)
	} else {
		fi, err = rq.fs.LookupFresh(ctx, rq.name, rq.slash)
	}
	if list != nil {
		defer list.Close()
	}
	if err == nil {
		err = rq.fs.LoadMeta(ctx, fi, rq.name) // its kept modification time
	}
	if err != nil {
		return err
	}
	if fi.IsDir() && depth != "0" && depth != "1" {
		return finiteDepthRefused()
	}

	ms := newMultistatus(rq.w)
	var sc propScratch
	dead, err := rq.fs.Props(ctx, rq.name, fi)
	if err == nil {
		err = ms.response(rq.href(rq.name, fi.IsDir()), propstats(ctx, pf, rq.name, fi, dead, &sc))
	}
	if err == nil && list != nil {
		for child, lerr := range list.Entries() {
			if lerr != nil {
				err = lerr
				break
			}
			name := path.Join(rq.name, child.Name())
			dead, perr := rq.fs.Props(ctx, name, child)
			if perr != nil {
				continue // one unreadable entry never breaks the listing (davfs warns)
			}
			if err = ms.response(rq.href(name, child.IsDir()), propstats(ctx, pf, name, child, dead, &sc)); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = ms.close()
	}
	switch {
	case err == nil:
		return nil
	case !ms.started:
		ms.discard()
		return err
	}
	return cutAnswer(err) // never a partial listing that looks whole
}

// readPropfind reads and parses a PROPFIND's body and Depth ("0", "1",
// "" or "infinity"; another is 400).
func (rq *request) readPropfind() (pf propfindBody, body []byte, depth string, err error) {
	if body, err = rq.readXMLBody(); err != nil {
		return pf, nil, "", err
	}
	if pf, err = parsePropfind(body); err != nil {
		return pf, nil, "", failWith(http.StatusBadRequest, err)
	}
	depth = strings.ToLower(strings.TrimSpace(rq.r.Header.Get("Depth")))
	switch depth {
	case "0", "1", "", "infinity":
	default:
		return pf, nil, "", failWith(http.StatusBadRequest, errors.New("bad Depth"))
	}
	return pf, body, depth, nil
}

// finiteDepthRefused is the answer to a PROPFIND of a folder with Depth
// infinity (or none): 403 with DAV:propfind-finite-depth.
func finiteDepthRefused() *httpError {
	refused := failWith(http.StatusForbidden, nil).withHeader("Content-Type", "application/xml; charset=utf-8")
	refused.body = []byte(`<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>` + "\n")
	return refused
}

// href is the URL path of a resource in answers: folders end in "/".
func (rq *request) href(name string, dir bool) string {
	return davPath(rq.base, name, dir)
}

// propfindContext tells davfs which extra properties the body asks for,
// each of which costs something to find.
func (rq *request) propfindContext(pf propfindBody, body []byte) context.Context {
	ctx := rq.r.Context()
	if asksLivePropsOnly(pf) {
		ctx = davfs.WithLivePropsOnly(ctx)
	}
	if bytes.Contains(body, []byte("http://owncloud.org/ns")) && bytes.Contains(body, []byte("checksums")) {
		ctx = davfs.WithChecksums(ctx)
	}
	if q := rq.parts.quota; q != nil && bytes.Contains(body, []byte("quota")) {
		if used, known := q.used(rq.root); known {
			ctx = davfs.WithQuota(ctx, used, max(0, q.limit-used))
		}
	}
	if bytes.Contains(body, []byte("lockdiscovery")) {
		ctx = davfs.WithLockDiscovery(ctx, func(name string) []byte {
			return lockDiscoveryXML(rq.locks.Discover(time.Now(), name), rq.base)
		})
	}
	return ctx
}

// asksLivePropsOnly reports whether a PROPFIND names properties and all of
// them are live (Finder's and most listing requests): dead properties then
// need not be read.
func asksLivePropsOnly(pf propfindBody) bool {
	if pf.Prop == nil {
		return false
	}
	for _, n := range pf.Prop {
		if findLive(n) == nil && !hiddenLive[n] {
			return false
		}
	}
	return true
}
