package gateway

import (
	"reflect"
	"strings"
	"testing"
)

// formatIfHeader writes h back as an If header.
func formatIfHeader(h ifHeader) string {
	var b strings.Builder
	for _, l := range h.lists {
		if l.resourceTag != "" || (len(h.lists) > 0 && h.lists[0].resourceTag != "") {
			b.WriteString("<" + l.resourceTag + "> ")
		}
		b.WriteString("(")
		for i, c := range l.conditions {
			if i > 0 {
				b.WriteString(" ")
			}
			if c.Not {
				b.WriteString("Not ")
			}
			if c.ETag != "" {
				b.WriteString("[" + c.ETag + "]")
			} else {
				b.WriteString("<" + c.Token + ">")
			}
		}
		b.WriteString(") ")
	}
	return b.String()
}

// FuzzIfHeader: the If header parser never panics, and what it accepts
// round-trips: written back and parsed again, it gives the same lists.
func FuzzIfHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, header string) {
		h, ok := parseIfHeader(header)
		if !ok {
			return
		}
		if len(h.lists) == 0 {
			t.Fatalf("%q: accepted with no list", header)
		}
		for _, l := range h.lists {
			if len(l.conditions) == 0 {
				t.Fatalf("%q: accepted a list with no condition", header)
			}
		}
		again := formatIfHeader(h)
		h2, ok := parseIfHeader(again)
		if !ok || !reflect.DeepEqual(h, h2) {
			t.Fatalf("%q parsed as %+v, written back as %q, parsed again as %+v (ok %v)", header, h, again, h2, ok)
		}
	})
}
