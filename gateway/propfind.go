package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"

	"github.com/davgw/davgw/davfs"
)

// maxXMLBody caps PROPFIND, PROPPATCH and LOCK request bodies.
const maxXMLBody = 1 << 20

// readXMLBody reads a small XML request body whole and checks that its
// namespace declarations are legal (x/net/webdav accepts xmlns:p="", which
// XML Namespaces 1.0 forbids: litmus propfind_invalid2). It answers the
// error itself and returns ok = false.
func (rq *request) readXMLBody() (body []byte, ok bool) {
	b, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, maxXMLBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			rq.w.fail(http.StatusRequestEntityTooLarge, err)
		} else {
			rq.w.fail(http.StatusBadRequest, err)
		}
		return nil, false
	}
	if err := checkNamespaces(b); err != nil {
		rq.w.fail(http.StatusBadRequest, err)
		return nil, false
	}
	rq.r.Body = io.NopCloser(bytes.NewReader(b))
	rq.r.ContentLength = int64(len(b))
	return b, true
}

func checkNamespaces(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // x/net reports malformed XML itself; this only adds a reason
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Space == "xmlns" && a.Value == "" {
					return errors.New("empty namespace name for prefix " + a.Name.Local)
				}
			}
		}
	}
}

// liveProps are the DAV: properties x/net/webdav computes itself.
var liveProps = map[string]bool{
	"resourcetype": true, "displayname": true, "getcontentlength": true,
	"getlastmodified": true, "creationdate": true, "getetag": true,
	"getcontenttype": true, "lockdiscovery": true, "supportedlock": true,
	"getcontentlanguage": true,
}

// asksLivePropsOnly reports whether a PROPFIND body names properties and
// all of them are live (Finder's and most listing requests): dead
// properties then need not be read.
func asksLivePropsOnly(body []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(body))
	depth, inProp, named := 0, false, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return named > 0
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Space == "DAV:" && t.Name.Local == "prop":
				inProp = true
			case depth == 2:
				return false // allprop, propname, include or unknown
			case depth == 3 && inProp:
				if t.Name.Space != "DAV:" || !liveProps[t.Name.Local] {
					return false
				}
				named++
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				inProp = false
			}
		}
	}
}

// propfind checks Depth (infinity is refused on collections), reads the
// target and, for Depth 1, its listing before the first byte is written, so
// that S3 failures get an honest status instead of a broken multistatus.
// The listing fills the request's stat cache: x/net's per-child Stat and
// OpenFile then cost nothing.
func (rq *request) propfind() {
	ctx := rq.r.Context()
	body, ok := rq.readXMLBody()
	if !ok {
		return
	}
	if asksLivePropsOnly(body) {
		rq.r = rq.r.WithContext(davfs.WithLivePropsOnly(ctx))
	}
	// A Depth 1 PROPFIND lists a folder: look for the folder first, so the
	// folder itself costs at most two requests (LIST, HEAD of its marker).
	fi, err := rq.fs.Lookup(ctx, rq.name, rq.slash || rq.r.Header.Get("Depth") == "1")
	if err != nil {
		rq.w.failErr(err, http.StatusNotFound)
		return
	}
	switch rq.r.Header.Get("Depth") {
	case "0", "1":
	case "", "infinity":
		if fi.IsDir() {
			h := rq.w.Header()
			h.Set("Content-Type", "application/xml; charset=utf-8")
			rq.w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(rq.w, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+
				`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`+"\n")
			return
		}
		rq.r.Header.Set("Depth", "0")
	default:
		rq.w.fail(http.StatusBadRequest, errors.New("bad Depth"))
		return
	}
	if rq.r.Header.Get("Depth") == "1" && fi.IsDir() {
		if _, err := rq.fs.ReadDir(ctx, rq.name); err != nil {
			rq.w.failErr(err, http.StatusNotFound)
			return
		}
	}
	rq.delegate()
}

// proppatch checks the body and the target, then lets x/net/webdav apply the
// patch through davfs's DeadPropsHolder.
func (rq *request) proppatch() {
	if _, ok := rq.readXMLBody(); !ok {
		return
	}
	if _, err := rq.fs.Lookup(rq.r.Context(), rq.name, rq.slash); err != nil {
		rq.w.failErr(err, http.StatusNotFound)
		return
	}
	rq.delegate()
}

// lock lets x/net/webdav create or refresh the lock; a LOCK on a missing
// name creates an empty file (RFC 4918 7.3), which needs its parent.
func (rq *request) lock() {
	ctx := rq.r.Context()
	body, ok := rq.readXMLBody()
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if _, err := rq.fs.Lookup(ctx, rq.name, rq.slash); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				rq.w.failErr(err, http.StatusNotFound)
				return
			}
			if rq.name == "/" {
				rq.w.fail(http.StatusConflict, err)
				return
			}
			if _, err := rq.fs.StatDir(ctx, path.Dir(rq.name)); err != nil {
				rq.w.failErr(err, http.StatusConflict)
				return
			}
		}
	}
	rq.delegate()
}
