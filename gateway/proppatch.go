package gateway

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"

	"github.com/davgw/davgw/davfs"
)

// proppatch checks the body, the target and the If header (ETag conditions
// included), then lets x/net/webdav apply the patch through davfs's
// DeadPropsHolder.
func (rq *request) proppatch() error {
	body, err := rq.readXMLBody()
	if err != nil {
		return err
	}
	if _, err := rq.lookup(); err != nil {
		return err
	}
	release, err := rq.confirmLocks(rq.name, "", false)
	if err != nil {
		return err
	}
	defer release()
	// Dead properties are stored (in the folder's index), so they count
	// towards the quota: the body's size, a bound of what the patch adds.
	quota, err := rq.parts.quota.reserve(rq.r.Context(), rq.root, int64(len(body)), 0)
	if err != nil {
		return failWith(statusFor(err, http.StatusInternalServerError), err)
	}
	defer quota.commit(int64(len(body)))
	// x/net/webdav refuses to set DAV:getlastmodified (a live property);
	// davgw keeps it as the modification time. It travels to davfs under
	// another name and comes back under its own in the answer.
	renamed := false
	if bytes.Contains(body, []byte("getlastmodified")) {
		if nb, changed, err := renameProp(body, xml.Name{Space: "DAV:", Local: "getlastmodified"}, davfs.MTimeSetter()); err == nil && changed {
			rq.r.Body = io.NopCloser(bytes.NewReader(nb))
			rq.r.ContentLength = int64(len(nb))
			renamed = true
		}
	}
	buf, met := rq.delegate(preconfirmed{rq.locks})
	out := buf.body.Bytes()
	if renamed {
		out = bytes.ReplaceAll(out, []byte(`xmlns="`+davfs.MTimeSetter().Space+`"`), []byte(`xmlns="DAV:"`))
	}
	return rq.relay(buf, met, rq.mendHref(out))
}

// mendHref rewrites the href x/net writes in a PROPPATCH answer (the URL
// path it was handed: the name in key form) to the name's own URL path.
func (rq *request) mendHref(body []byte) []byte {
	shown := davPath(rq.base, rq.name, false)
	if rq.name == "/" {
		shown = rq.base + "/"
	}
	if shown == rq.r.URL.Path {
		return body
	}
	return bytes.Replace(body, hrefXML(rq.r.URL.Path), hrefXML(shown), 1)
}

// hrefXML is a DAV:href element for an unescaped URL path, as x/net writes
// it.
func hrefXML(p string) []byte {
	var b bytes.Buffer
	b.WriteString("<D:href>")
	_ = xml.EscapeText(&b, []byte((&url.URL{Path: p}).EscapedPath()))
	b.WriteString("</D:href>")
	return b.Bytes()
}

// renameProp rewrites an XML body, renaming elements called from to to.
// Namespace declarations are re-emitted by the encoder, which writes each
// element's namespace as the default one (xmlns="..."): an element in no
// namespace inside one that has a namespace gets xmlns="", or it would
// land in its parent's.
func renameProp(body []byte, from, to xml.Name) ([]byte, bool, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	var out bytes.Buffer
	e := xml.NewEncoder(&out)
	changed := false
	var spaces []string // the namespaces of the open elements
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name == from {
				t.Name, changed = to, true
			}
			attrs := t.Attr[:0]
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
					attrs = append(attrs, a)
				}
			}
			if t.Name.Space == "" && len(spaces) > 0 && spaces[len(spaces)-1] != "" {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "xmlns"}})
			}
			t.Attr = attrs
			spaces = append(spaces, t.Name.Space)
			tok = t
		case xml.EndElement:
			if t.Name == from {
				t.Name = to
			}
			if len(spaces) > 0 {
				spaces = spaces[:len(spaces)-1]
			}
			tok = t
		case xml.ProcInst:
			continue // the encoder refuses a second xml declaration; none is needed
		}
		if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
			return nil, false, err
		}
	}
	if err := e.Flush(); err != nil {
		return nil, false, err
	}
	return out.Bytes(), changed, nil
}
