package tests

import (
	"encoding/xml"
	"net/url"
	"strings"
	"testing"
)

// msProp is one property of a propstat, by namespace and local name.
type msProp struct {
	XMLName xml.Name
	Text    string `xml:",chardata"`
	Inner   string `xml:",innerxml"`
}

// msPropAny catches every element inside DAV:prop.
type msPropAny struct {
	Props []msProp `xml:",any"`
}

type msPropstatRaw struct {
	Status string    `xml:"DAV: status"`
	Prop   msPropAny `xml:"DAV: prop"`
}

type msResponseRaw struct {
	Href      string          `xml:"DAV: href"`
	Status    string          `xml:"DAV: status"`
	Propstats []msPropstatRaw `xml:"DAV: propstat"`
}

type multistatusRaw struct {
	Responses []msResponseRaw `xml:"DAV: response"`
}

// msResponse is one DAV:response: its href and the properties found (200)
// with their text, plus the status of every property by name.
type msResponse struct {
	Href   string
	Props  map[string]msProp // "ns local" or "DAV: getetag" -> property with status 200
	Status map[string]string // "ns local" -> status line of its propstat
	Raw    msResponseRaw
}

// propKey names a property as "namespace local", e.g. "DAV: getetag".
func propKey(n xml.Name) string { return n.Space + " " + n.Local }

// parseMultistatus decodes a 207 body.
func parseMultistatus(tb testing.TB, body []byte) []msResponse {
	tb.Helper()
	var ms multistatusRaw
	if err := xml.Unmarshal(body, &ms); err != nil {
		tb.Fatalf("multistatus does not parse: %v\n%s", err, truncate(string(body), 2000))
	}
	out := make([]msResponse, 0, len(ms.Responses))
	for _, r := range ms.Responses {
		m := msResponse{Href: r.Href, Props: map[string]msProp{}, Status: map[string]string{}, Raw: r}
		for _, ps := range r.Propstats {
			for _, p := range ps.Prop.Props {
				k := propKey(p.XMLName)
				m.Status[k] = ps.Status
				if strings.Contains(ps.Status, " 200") {
					m.Props[k] = p
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// isCollection reports whether resourcetype contains DAV:collection.
func (m msResponse) isCollection() bool {
	rt, ok := m.Props["DAV: resourcetype"]
	return ok && strings.Contains(rt.Inner, "collection")
}

// hrefPath returns the unescaped path of an href (absolute URL or path).
func hrefPath(tb testing.TB, href string) string {
	tb.Helper()
	u, err := url.Parse(href)
	if err != nil {
		tb.Fatalf("href %q is not a URL: %v", href, err)
	}
	return u.Path
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
