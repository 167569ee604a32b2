package tests

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// dest builds a Destination header for a DAV path on the same gateway.
func (e *davEnv) dest(path string, overwrite string) map[string]string {
	h := map[string]string{"Destination": e.URL + path}
	if overwrite != "" {
		h["Overwrite"] = overwrite
	}
	return h
}

// noBodyThroughGateway fails if the gateway read an object body (GetObject)
// or uploaded one (PutObject / UploadPart) instead of copying server-side.
func noBodyThroughGateway(t *testing.T, what string, calls []s3Call) {
	t.Helper()
	// Reads and writes of the per-folder index (kept times, dead
	// properties) are metadata, not the copied bytes.
	var data []s3Call
	for _, c := range calls {
		if !strings.HasSuffix(c.Key, "/.davgw-index.json") {
			data = append(data, c)
		}
	}
	calls = data
	ops := countOps(calls)
	if ops["GetObject"] != 0 || ops["UploadPart"] != 0 || ops["PutObject"] > 0 && !onlyEmptyPuts(calls) {
		t.Errorf("%s streamed bytes through the gateway: %v%s", what, ops, describeCalls(calls))
	}
	if ops["CopyObject"]+ops["UploadPartCopy"] == 0 {
		t.Errorf("%s made no server-side copy: %v%s", what, ops, describeCalls(calls))
	}
}

// onlyEmptyPuts: PutObject calls are allowed for folder markers only.
func onlyEmptyPuts(calls []s3Call) bool {
	for _, c := range calls {
		if c.Op() == "PutObject" && !strings.HasSuffix(c.Key, "/") {
			return false
		}
	}
	return true
}

func copyCases() []conformanceCase {
	return []conformanceCase{
		{"COPY of a file is a server-side copy and answers 201", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			data := randBytes(100 << 10)
			e.putS3(t, keyPrefix+"src.bin", data, "image/png")
			mark := e.b.proxy.Mark()
			r := e.alice(t, "COPY", dir+"src.bin", e.dest(dir+"dst.bin", ""), nil)
			expect(t, "COPY to a new name", r, http.StatusCreated)
			noBodyThroughGateway(t, "COPY of a file", e.b.proxy.SinceUnder(mark, keyPrefix))
			got, _ := e.getS3(t, keyPrefix+"dst.bin")
			if !bytes.Equal(got, data) {
				t.Errorf("the copy holds %d bytes that differ from the source's %d", len(got), len(data))
			}
			if _, _, ct, _ := e.headS3(t, keyPrefix+"dst.bin"); ct != "image/png" {
				t.Errorf("the copy's content type = %q, want image/png", ct)
			}
			if src, _ := e.getS3(t, keyPrefix+"src.bin"); !bytes.Equal(src, data) {
				t.Error("COPY changed its source")
			}
		}},
		{"COPY of a folder with Depth infinity copies every key server-side", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			tree := map[string]string{"tree/": "", "tree/a.txt": "A", "tree/sub/": "", "tree/sub/b.txt": "BB",
				"tree/sub/deeper/c.txt": "CCC"}
			for k, v := range tree {
				e.putS3(t, keyPrefix+k, []byte(v), "")
			}
			mark := e.b.proxy.Mark()
			h := e.dest(dir+"copy/", "")
			h["Depth"] = "infinity"
			r := e.alice(t, "COPY", dir+"tree/", h, nil)
			expect(t, "COPY of a folder", r, http.StatusCreated)
			noBodyThroughGateway(t, "COPY of a folder", e.b.proxy.SinceUnder(mark, keyPrefix))
			for k, v := range tree {
				if strings.HasSuffix(k, "/") {
					continue
				}
				ck := keyPrefix + "copy/" + strings.TrimPrefix(k, "tree/")
				got, ok := e.getS3(t, ck)
				if !ok || string(got) != v {
					t.Errorf("%s: %q (exists=%v), want %q", ck, got, ok, v)
				}
			}
			if n := len(e.b.keys(t, keyPrefix+"tree/")); n != len(tree) {
				t.Errorf("the source folder has %d keys after COPY, want %d", n, len(tree))
			}
		}},
		{"COPY with Overwrite F onto an existing file answers 412 and changes nothing", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("source"), "")
			e.putS3(t, keyPrefix+"b.txt", []byte("destination"), "")
			before := e.b.snapshot(t, keyPrefix)
			r := e.alice(t, "COPY", dir+"a.txt", e.dest(dir+"b.txt", "F"), nil)
			expect(t, "COPY Overwrite: F onto an existing file", r, http.StatusPreconditionFailed)
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("a refused COPY changed S3: %s", d)
			}
		}},
		{"COPY of a file onto an existing folder with Overwrite T replaces the folder", func(t *testing.T, e *davEnv) {
			fileOntoFolder(t, e, "COPY")
		}},
		{"COPY without an Overwrite header onto an existing file overwrites it with 204", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("source"), "")
			e.putS3(t, keyPrefix+"b.txt", []byte("destination"), "")
			r := e.alice(t, "COPY", dir+"a.txt", e.dest(dir+"b.txt", ""), nil)
			expect(t, "COPY without Overwrite onto an existing file", r, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"b.txt"); string(got) != "source" {
				t.Errorf("the destination holds %q, want source", got)
			}
		}},
	}
}

// fileOntoFolder checks COPY or MOVE of a file onto an existing folder with
// Overwrite: T: the folder is replaced by the file (RFC 4918 9.8.4/9.9.3),
// also on stores where a file and a folder cannot share a name.
func fileOntoFolder(t *testing.T, e *davEnv, method string) {
	keyPrefix, dir := e.caseDir(t)
	e.putS3(t, keyPrefix+"file.txt", []byte("the file"), "")
	for _, k := range []string{"target/", "target/old.txt", "target/sub/older.txt"} {
		e.putS3(t, keyPrefix+k, markerOr(k), "")
	}
	r := e.alice(t, method, dir+"file.txt", e.dest(dir+"target", "T"), nil)
	expect(t, method+" of a file onto an existing folder with Overwrite: T", r, http.StatusNoContent)
	if got, ok := e.getS3(t, keyPrefix+"target"); !ok || string(got) != "the file" {
		t.Errorf("key target holds %q (exists=%v), want the file", got, ok)
	}
	if left := e.b.keys(t, keyPrefix+"target/"); len(left) != 0 {
		t.Errorf("the replaced folder still has keys %v", left)
	}
}

func moveCases() []conformanceCase {
	return []conformanceCase{
		{"MOVE of a file answers 201, removes the source and keeps bytes and content type", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			data := randBytes(50 << 10)
			e.putS3(t, keyPrefix+"from.bin", data, "application/x-davgw-test")
			mark := e.b.proxy.Mark()
			r := e.alice(t, "MOVE", dir+"from.bin", e.dest(dir+"to.bin", ""), nil)
			expect(t, "MOVE to a new name", r, http.StatusCreated)
			noBodyThroughGateway(t, "MOVE of a file", e.b.proxy.SinceUnder(mark, keyPrefix))
			if _, ok := e.getS3(t, keyPrefix+"from.bin"); ok {
				t.Error("the source still exists after MOVE")
			}
			got, _ := e.getS3(t, keyPrefix+"to.bin")
			if !bytes.Equal(got, data) {
				t.Errorf("the destination holds %d bytes that differ from the %d moved", len(got), len(data))
			}
			if _, _, ct, _ := e.headS3(t, keyPrefix+"to.bin"); ct != "application/x-davgw-test" {
				t.Errorf("the destination's content type = %q, want application/x-davgw-test", ct)
			}
		}},
		{"MOVE without an Overwrite header onto an existing file overwrites it with 204", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a.txt", []byte("moving"), "")
			e.putS3(t, keyPrefix+"b.txt", []byte("replaced"), "")
			r := e.alice(t, "MOVE", dir+"a.txt", e.dest(dir+"b.txt", ""), nil)
			expect(t, "MOVE without Overwrite onto an existing file", r, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"b.txt"); string(got) != "moving" {
				t.Errorf("the destination holds %q, want moving", got)
			}
			if _, ok := e.getS3(t, keyPrefix+"a.txt"); ok {
				t.Error("the source still exists after MOVE")
			}
			f := e.alice(t, "MOVE", dir+"b.txt", e.dest(dir+"c.txt", "F"), nil)
			expect(t, "MOVE Overwrite: F onto a new name", f, http.StatusCreated)
		}},
		{"MOVE of a file onto an existing folder with Overwrite T replaces the folder", func(t *testing.T, e *davEnv) {
			fileOntoFolder(t, e, "MOVE")
		}},
		{"MOVE of a folder answers 403 and changes nothing", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			for _, k := range []string{"folder/", "folder/a.txt", "folder/sub/b.txt"} {
				e.putS3(t, keyPrefix+k, markerOr(k), "")
			}
			before := e.b.snapshot(t, keyPrefix)
			for _, src := range []string{dir + "folder/", dir + "folder"} {
				r := e.alice(t, "MOVE", src, e.dest(dir+"renamed/", ""), nil)
				expect(t, "MOVE of a folder ("+src+")", r, http.StatusForbidden)
			}
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("a refused folder MOVE changed S3: %s", d)
			}
		}},
		{"MOVE of a folder with Overwrite T onto an existing folder answers 403 and leaves the destination as it was", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			for _, k := range []string{"src/", "src/a.txt", "dst/", "dst/precious.txt", "dst/deep/er.txt"} {
				e.putS3(t, keyPrefix+k, markerOr(k), "")
			}
			before := e.b.snapshot(t, keyPrefix)
			mark := e.b.proxy.Mark()
			r := e.alice(t, "MOVE", dir+"src/", e.dest(dir+"dst/", "T"), nil)
			expect(t, "MOVE of a folder onto an existing folder with Overwrite: T", r, http.StatusForbidden)
			if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
				t.Errorf("a refused folder MOVE changed S3: %s", d)
			}
			for _, c := range e.b.proxy.SinceUnder(mark, keyPrefix) {
				switch c.Op() {
				case "DeleteObject", "DeleteObjects", "PutObject", "CopyObject":
					t.Errorf("a refused folder MOVE sent %s", c)
				}
			}
		}},
	}
}

// overlapCases: a COPY or MOVE whose destination contains its source, or
// lies inside it, would destroy the source or copy without end.
func overlapCases() []conformanceCase {
	return []conformanceCase{
		{"COPY and MOVE between a resource and its own ancestor or descendant answer 403 and change nothing", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			for _, k := range []string{"d/", "d/f.txt", "d/sub/", "d/sub/g.txt"} {
				e.putS3(t, keyPrefix+k, markerOr(k), "")
			}
			before := e.b.snapshot(t, keyPrefix)
			mark := e.b.proxy.Mark()
			for _, c := range []struct{ what, method, src, dst string }{
				{"MOVE of d/f.txt onto its folder d without Overwrite", "MOVE", dir + "d/f.txt", dir + "d"},
				{"COPY of d/sub/ onto its parent d/", "COPY", dir + "d/sub/", dir + "d/"},
				{"COPY of the root into d/x/, inside itself", "COPY", "/dav/", dir + "d/x/"},
			} {
				r := e.alice(t, c.method, c.src, e.dest(c.dst, ""), nil)
				expect(t, c.what, r, http.StatusForbidden)
				if d := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); d != "" {
					t.Fatalf("%s changed S3: %s", c.what, d)
				}
			}
			for _, c := range e.b.proxy.Since(mark) {
				if !strings.HasPrefix(c.Key, "users/alice/") && c.Key != "" {
					continue
				}
				switch c.Op() {
				case "DeleteObject", "DeleteObjects", "PutObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy":
					t.Errorf("a refused overlapping COPY or MOVE sent %s", c)
				}
			}
		}},
	}
}

// markerOr returns no body for a folder marker ("x/"), else the key as body.
func markerOr(key string) []byte {
	if strings.HasSuffix(key, "/") {
		return nil
	}
	return []byte("content of " + key)
}
