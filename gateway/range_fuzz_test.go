package gateway

import (
	"strconv"
	"testing"
)

// FuzzRange: the Range parsers never panic; a range they accept is
// well-formed and round-trips; what they resolve against a size lies
// within the object.
func FuzzRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if r, ok := parseOneRange(header); ok {
			var again string
			switch {
			case r.isSuffix:
				again = "bytes=-" + strconv.FormatInt(r.suffix, 10)
			case r.last < 0:
				again = "bytes=" + strconv.FormatInt(r.first, 10) + "-"
			default:
				if r.first < 0 || r.last < r.first {
					t.Fatalf("%q: accepted %+v", header, r)
				}
				again = "bytes=" + strconv.FormatInt(r.first, 10) + "-" + strconv.FormatInt(r.last, 10)
			}
			if r2, ok := parseOneRange(again); !ok || r2 != r {
				t.Fatalf("%q parsed as %+v, written back as %q, parsed again as %+v", header, r, again, r2)
			}
			if oneRangeSpec(header) == zeroSuffixRange(header) {
				t.Fatalf("%q: one range S3 can answer and the empty suffix at once (or neither)", header)
			}
		}
		if start, end, ok := singleRange(header, size); ok && (start < 0 || start > end || end >= size) {
			t.Fatalf("%q against %d bytes: window %d-%d", header, size, start, end)
		}
		for _, w := range rangeWindows(header, size) {
			if w[0] < 0 || w[0] > w[1] || w[1] >= size {
				t.Fatalf("%q against %d bytes: window %v", header, size, w)
			}
		}
	})
}
