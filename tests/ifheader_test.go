package tests

import (
	"net/http"
	"strings"
	"testing"
)

// ifETag is an If header with one untagged list holding one entity tag
// (RFC 4918 10.4): it applies to the request URI.
func ifETag(etag string) map[string]string {
	return map[string]string{"If": "([" + etag + "])"}
}

const bogusETag = `"bogus"`

func ifHeaderCases() []conformanceCase {
	return []conformanceCase{
		{"PUT with an If header naming the current ETag succeeds and with a bogus one answers 412", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			key := keyPrefix + "cond.txt"
			etag := e.putS3(t, key, []byte("v1"), "text/plain")
			bad := e.alice(t, http.MethodPut, dir+"cond.txt", ifETag(bogusETag), []byte("v2 bogus"))
			expect(t, "PUT with If: ([\"bogus\"])", bad, http.StatusPreconditionFailed)
			if got, _ := e.getS3(t, key); string(got) != "v1" {
				t.Fatalf("S3 holds %q after a refused If PUT, want v1", got)
			}
			if now, _, _, _ := e.headS3(t, key); now != etag {
				t.Errorf("the ETag changed from %s to %s after a refused If PUT", etag, now)
			}
			ok := e.alice(t, http.MethodPut, dir+"cond.txt", ifETag(etag), []byte("v2 right"))
			expect(t, "PUT with If: ([current ETag])", ok, http.StatusNoContent)
			if got, _ := e.getS3(t, key); string(got) != "v2 right" {
				t.Errorf("S3 holds %q after the If PUT, want v2 right", got)
			}
		}},
		{"COPY with an If header naming the source's ETag copies, and with a bogus one answers 412", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			etag := e.putS3(t, keyPrefix+"src.txt", []byte("source"), "")
			bad := e.alice(t, "COPY", dir+"src.txt", mergeHeaders(e.dest(dir+"bogus.txt", ""), ifETag(bogusETag)), nil)
			expect(t, "COPY with If: ([\"bogus\"])", bad, http.StatusPreconditionFailed)
			if _, ok := e.getS3(t, keyPrefix+"bogus.txt"); ok {
				t.Error("a refused If COPY created its destination")
			}
			// The untagged list applies to the request URI, the source; the
			// destination does not exist, so it cannot be what is matched.
			r := e.alice(t, "COPY", dir+"src.txt", mergeHeaders(e.dest(dir+"dst.txt", ""), ifETag(etag)), nil)
			expect(t, "COPY with If: ([source ETag])", r, http.StatusCreated)
			if got, ok := e.getS3(t, keyPrefix+"dst.txt"); !ok || string(got) != "source" {
				t.Errorf("the copy holds %q (exists=%v), want source", got, ok)
			}
		}},
		{"PROPPATCH with an If header naming the current ETag answers 207 and sets the property, and with a bogus one 412", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			etag := e.putS3(t, keyPrefix+"props.txt", []byte("p"), "")
			bad := e.alice(t, "PROPPATCH", dir+"props.txt", ifETag(bogusETag), []byte(deadPropPatch))
			expect(t, "PROPPATCH with If: ([\"bogus\"])", bad, http.StatusPreconditionFailed)
			if got := e.deadProp(t, dir+"props.txt"); got != "" {
				t.Fatalf("a refused If PROPPATCH set the property to %q", got)
			}
			r := e.alice(t, "PROPPATCH", dir+"props.txt", ifETag(etag), []byte(deadPropPatch))
			expect(t, "PROPPATCH with If: ([current ETag])", r, http.StatusMultiStatus)
			ms := parseMultistatus(t, r.Body)
			if len(ms) != 1 || !strings.Contains(ms[0].Status["urn:davgw:test colour"], " 200") {
				t.Fatalf("PROPPATCH did not answer 200 for the property: %s", r)
			}
			if got := e.deadProp(t, dir+"props.txt"); got != "deep blue & green" {
				t.Errorf("PROPFIND after the If PROPPATCH returned %q, want deep blue & green", got)
			}
		}},
	}
}

// mergeHeaders returns one header map holding every entry of hs.
func mergeHeaders(hs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}
