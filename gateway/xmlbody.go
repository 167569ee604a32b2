package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxXMLBody caps PROPFIND, PROPPATCH and LOCK request bodies.
const maxXMLBody = 1 << 20

// readXMLBody reads a small XML request body whole and checks that its
// namespace declarations are legal (x/net/webdav accepts xmlns:p="", which
// XML Namespaces 1.0 forbids: litmus propfind_invalid2).
func (rq *request) readXMLBody() (body []byte, err error) {
	rq.w.body.whole() // a small body: all of it within the idle timeout
	b, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, maxXMLBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, failWith(http.StatusRequestEntityTooLarge, err)
		}
		return nil, failWith(statusFor(err, http.StatusBadRequest), err)
	}
	if err := checkNamespaces(b, *rq.g.requests.Load()); err != nil {
		return nil, failWith(http.StatusBadRequest, err).explained()
	}
	rq.r.Body = io.NopCloser(bytes.NewReader(b))
	rq.r.ContentLength = int64(len(b))
	return b, nil
}

// checkNamespaces scans a body's tokens (never building a tree): it
// refuses illegal namespace declarations and bodies past the XML bounds of
// limits, before the body reaches x/net.
func checkNamespaces(b []byte, limits RequestLimits) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, elements := 0, 0
	// The prefixes declared on each open element: a prefix used without a
	// declaration is a namespace error (encoding/xml would take the prefix
	// for the namespace, and a rewritten body would mean something else).
	var scopes []map[string]bool
	bound := func(prefix string) bool {
		if prefix == "" || prefix == "xmlns" || prefix == "xml" {
			return true
		}
		for _, sc := range scopes {
			if sc[prefix] {
				return true
			}
		}
		return false
	}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // x/net reports malformed XML itself; this only adds a reason
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			if depth > limits.XMLDepth {
				return fmt.Errorf("XML body nested deeper than %d elements ([limits].xml_depth)", limits.XMLDepth)
			}
			if elements > limits.XMLElements {
				return fmt.Errorf("XML body with more than %d elements ([limits].xml_elements)", limits.XMLElements)
			}
			var sc map[string]bool
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" && a.Value == "" {
					return errors.New("empty namespace name for prefix " + a.Name.Local)
				}
				if a.Name.Space == "xmlns" {
					if sc == nil {
						sc = map[string]bool{}
					}
					sc[a.Name.Local] = true
				}
			}
			scopes = append(scopes, sc)
			if !bound(t.Name.Space) {
				return errors.New("undeclared namespace prefix " + t.Name.Space)
			}
			for _, a := range t.Attr {
				if !bound(a.Name.Space) {
					return errors.New("undeclared namespace prefix " + a.Name.Space)
				}
			}
		case xml.EndElement:
			depth--
			if len(scopes) > 0 {
				scopes = scopes[:len(scopes)-1]
			}
		}
	}
}

// bufferedWriter collects a small response.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
