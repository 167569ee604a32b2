package davfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/s3vfs"
)

// Unit tests of davfs over the in-memory Store (memstore_test.go): names,
// what a name is, the folder index, copy and move, error mapping, and the
// S3 calls each operation costs (docs/s3-requests.md).

const idxKey = "r/d/" + indexName

// memFS is one request's FS over s, with gateway-wide caches of its own.
func memFS(s *memStore) *FS {
	return New(s, "r/", Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20)})
}

func seed(s *memStore, objs map[string]string) {
	for k, v := range objs {
		s.objs[k] = []byte(v)
	}
}

func names(fis []*FileInfo) []string {
	var out []string
	for _, fi := range fis {
		out = append(out, fi.Name())
	}
	return out
}

func TestNamesMapToKeysUnderTheRoot(t *testing.T) {
	f := memFS(newMem())
	cases := []struct {
		name, key, prefix string
	}{
		{"/a/b.txt", "r/a/b.txt", "r/a/b.txt/"},
		{"a//b/", "r/a/b", "r/a/b/"},
		{"/../../etc/passwd", "r/etc/passwd", "r/etc/passwd/"},
		{"/a/./b/../c", "r/a/c", "r/a/c/"},
		{"", "r/", "r/"},
		{"/", "r/", "r/"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q is the key %q", c.name, c.key), func(t *testing.T) {
			n := Clean(c.name)
			if got := f.key(n); got != c.key {
				t.Errorf("key(Clean(%q)) = %q, want %q", c.name, got, c.key)
			}
			if got := f.dirPrefix(n); got != c.prefix {
				t.Errorf("dirPrefix(Clean(%q)) = %q, want %q", c.name, got, c.prefix)
			}
		})
	}
}

func TestOnlyServableKeySegmentsAreNames(t *testing.T) {
	cases := []struct {
		segment string
		valid   bool
	}{
		{"report.pdf", true},
		{".hidden", true},
		{"ünïcødé ✓", true},
		{"", false},
		{".", false},
		{"..", false},
		{".davgw", false},
		{indexName, false},
		{stagingPrefix + "1234", false},
		{"a\x00b", false},
		{"bad\xffutf8", false},
		{"a/b", false},
		{"bad‛FFutf8", true},
		{"quote‛‛rune", true},
		{"cr‛0Dlf‛0A", true},
		{"lone‛quote", false},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("x", 256), false},
		{"needless‛41", false},
		{"lower‛fe", false},
		{"raw\ncontrol", false},
		{`raw\backslash`, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q is valid: %v", c.segment, c.valid), func(t *testing.T) {
			if got := validName(c.segment); got != c.valid {
				t.Errorf("validName(%q) = %v", c.segment, got)
			}
		})
	}
}

func TestAListingShowsOnlyServableAndUnhiddenNames(t *testing.T) {
	s := newMem()
	seed(s, map[string]string{
		"r/d/": "", "r/d/a.txt": "a", "r/d/sub/x": "x", "r/d/.DS_Store": "h",
		idxKey: `{"v":1}`, "r/d/" + stagingPrefix + "1": "s", "r/d/bad\xff": "b", "r/d/.davgw/x": "x",
	})
	f := New(s, "r/", Options{Hide: func(base string) bool { return base == ".DS_Store" }})
	fis, err := f.ReadDir(context.Background(), "/d")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(fis), []string{"a.txt", "sub"}; !slices.Equal(got, want) {
		t.Errorf("ReadDir(/d) = %q, want %q", got, want)
	}
	if _, err := f.Stat(context.Background(), "/d/.DS_Store"); err != nil {
		t.Errorf("a hidden name stays reachable by name: %v", err)
	}
}

func TestWhatANameIs(t *testing.T) {
	state := map[string]string{
		"r/a": "file", "r/a/x": "under the file's name", "r/d/": "", "r/d/f": "f",
		"r/bare/x": "x", idxKey: `{"v":1}`,
	}
	cases := []struct {
		name  string
		path  string
		slash bool
		dir   bool
		err   error
	}{
		{"a file wins over a folder of the same name", "/a", false, false, nil},
		{"a name with a slash finds the folder behind the file", "/a", true, true, nil},
		{"a file named with a slash is not there", "/d/f", true, false, ErrFileNamedAsFolder},
		{"a folder marker is a folder", "/d", false, true, nil},
		{"a bare prefix is a folder", "/bare", false, true, nil},
		{"a missing name does not exist", "/d/none", false, false, fs.ErrNotExist},
		{"a name under a file does not exist", "/d/f/x", false, false, fs.ErrNotExist},
		{"the gateway's own objects do not exist", "/d/" + indexName, false, false, fs.ErrNotExist},
		{"the root is a folder", "/", false, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newMem()
			seed(s, state)
			fi, err := memFS(s).Lookup(context.Background(), c.path, c.slash)
			switch {
			case c.err != nil:
				if !errors.Is(err, c.err) {
					t.Fatalf("Lookup(%s, slash %v) = %v, %v; want %v", c.path, c.slash, fi, err, c.err)
				}
			case err != nil:
				t.Fatalf("Lookup(%s, slash %v): %v", c.path, c.slash, err)
			case fi.IsDir() != c.dir:
				t.Fatalf("Lookup(%s, slash %v) is a folder: %v, want %v", c.path, c.slash, fi.IsDir(), c.dir)
			}
		})
	}
}

func TestS3ErrorsBecomeIoFsErrors(t *testing.T) {
	cases := []struct {
		name    string
		s3err   error
		want    []error
		notWant error
	}{
		{"a missing object is fs.ErrNotExist", s3vfs.ErrNotFound, []error{fs.ErrNotExist}, nil},
		{"a denied request is fs.ErrPermission and still ErrAccessDenied", s3vfs.ErrAccessDenied, []error{fs.ErrPermission, s3vfs.ErrAccessDenied}, fs.ErrNotExist},
		{"a conflicting key is fs.ErrExist and still ErrConflict", s3vfs.ErrConflict, []error{fs.ErrExist, s3vfs.ErrConflict}, nil},
		{"a throttled request stays ErrUnavailable, never a missing file", s3vfs.ErrUnavailable, []error{s3vfs.ErrUnavailable}, fs.ErrNotExist},
		{"a failed precondition stays ErrPreconditionFailed", s3vfs.ErrPreconditionFailed, []error{s3vfs.ErrPreconditionFailed}, fs.ErrNotExist},
	}
	ops := []struct {
		op, s3op, key string
		do            func(*FS) error
	}{
		{"Stat", "HeadObject", "r/d/f", func(f *FS) error { _, err := f.Stat(context.Background(), "/d/f"); return err }},
		{"RemoveAll", "DeleteObjects", "r/d/f", func(f *FS) error { return f.RemoveAll(context.Background(), "/d/f") }},
		{"Mkdir", "PutObject", "r/d/new/", func(f *FS) error { return f.Mkdir(context.Background(), "/d/new", 0) }},
		{"Read", "GetObject", "r/d/f", func(f *FS) error {
			fl, err := f.OpenFile(context.Background(), "/d/f", 0, 0)
			if err != nil {
				return err
			}
			_, err = io.ReadAll(fl)
			return err
		}},
	}
	for _, op := range ops {
		for _, c := range cases {
			if op.s3op != "HeadObject" && errors.Is(c.s3err, s3vfs.ErrNotFound) {
				continue // S3 deletes and writes do not answer 404
			}
			t.Run(op.op+": "+c.name, func(t *testing.T) {
				s := newMem()
				seed(s, map[string]string{"r/d/": "", "r/d/f": "f"})
				s.fail(op.s3op, op.key, fmt.Errorf("s3 said no: %w", c.s3err))
				err := op.do(memFS(s))
				var pe *fs.PathError
				if !errors.As(err, &pe) {
					t.Fatalf("%s: %v (%T), want an *fs.PathError", op.op, err, err)
				}
				for _, w := range c.want {
					if !errors.Is(err, w) {
						t.Errorf("%s: %v, want it to match %v", op.op, err, w)
					}
				}
				if c.notWant != nil && errors.Is(err, c.notWant) {
					t.Errorf("%s: %v matches %v", op.op, err, c.notWant)
				}
			})
		}
	}
}

// upload writes body to name through Create and Commit, as a PUT does.
func upload(t *testing.T, f *FS, name, body string, mtime time.Time) *FileInfo {
	t.Helper()
	w, err := f.Create(context.Background(), name, PutOptions{Size: int64(len(body)), MTime: mtime})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	fi, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// readTime is the modification time name shows to a GET and in its
// folder's listing, from a fresh request.
func readTime(t *testing.T, s *memStore, name string) (get, listed time.Time) {
	t.Helper()
	f := memFS(s)
	fi, fl, err := f.OpenRead(context.Background(), name, "", false)
	if err != nil {
		t.Fatal(err)
	}
	_ = fl.Close()
	fis, err := memFS(s).ReadDir(context.Background(), "/d")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range fis {
		if "/d/"+l.Name() == name {
			return fi.ModTime(), l.ModTime()
		}
	}
	t.Fatalf("%s not listed", name)
	return
}

func TestTheIndexKeepsTimesAndProperties(t *testing.T) {
	kept := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	s3time := time.Unix(1000, 0).UTC()
	cases := []struct {
		name      string
		before    func(*memStore)
		do        func(*testing.T, *FS)
		wantTime  time.Time
		wantProps string
	}{
		{"an upload's kept time is written and read back by GET and listings",
			nil,
			func(t *testing.T, f *FS) { upload(t, f, "/d/x", "one", kept) },
			kept, ""},
		{"an overwrite with a time keeps the file's dead properties",
			func(s *memStore) {
				s.objs["r/d/x"] = []byte("old")
				putIndex(s, idxKey, map[string]metaEntry{"x": {ETag: etagOf([]byte("old")), MTime: 1, Props: "P"}})
			},
			func(t *testing.T, f *FS) { upload(t, f, "/d/x", "new", kept) },
			kept, "P"},
		{"an overwrite without a time shows S3's time, not the old version's",
			func(s *memStore) {
				s.objs["r/d/x"] = []byte("old")
				putIndex(s, idxKey, map[string]metaEntry{"x": {ETag: etagOf([]byte("old")), MTime: kept.UnixNano()}})
			},
			func(t *testing.T, f *FS) { upload(t, f, "/d/x", "new", time.Time{}) },
			s3time, ""},
		{"an object changed outside the gateway shows S3's time",
			func(s *memStore) {
				s.objs["r/d/x"] = []byte("theirs")
				putIndex(s, idxKey, map[string]metaEntry{"x": {ETag: etagOf([]byte("ours")), MTime: kept.UnixNano()}})
			},
			func(*testing.T, *FS) {},
			s3time, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newMem()
			s.objs["r/d/"] = nil
			if c.before != nil {
				c.before(s)
			}
			c.do(t, memFS(s))
			get, listed := readTime(t, s, "/d/x")
			if !get.Equal(c.wantTime) || !listed.Equal(c.wantTime) {
				t.Errorf("GET shows %v, the listing %v; want %v", get, listed, c.wantTime)
			}
			if got := s.index(t, idxKey)["x"].Props; got != c.wantProps {
				t.Errorf("dead properties %q, want %q", got, c.wantProps)
			}
		})
	}
}

func TestCopyAndMovePlanning(t *testing.T) {
	kept := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC).UnixNano()
	base := func(s *memStore) {
		seed(s, map[string]string{"r/d/": "", "r/d/a": "A", "r/d/sub/": "", "r/d/sub/y": "y"})
		putIndex(s, idxKey, map[string]metaEntry{"a": {ETag: etagOf([]byte("A")), MTime: kept, Props: "P"}})
	}
	ctx := context.Background()
	cases := []struct {
		name    string
		before  func(*memStore)
		do      func(*FS) (bool, error)
		err     error
		created bool
		keys    map[string]string // keys that must hold these bytes ("" = absent)
		entry   string            // the index entry that must carry the source's time and properties
	}{
		{"a file copied onto a free name is created with its bytes and its entry",
			nil, func(f *FS) (bool, error) { return f.Copy(ctx, "/d/a", "/d/b", true, true) },
			nil, true, map[string]string{"r/d/a": "A", "r/d/b": "A"}, "b"},
		{"a file copied onto a file replaces it",
			func(s *memStore) { s.objs["r/d/b"] = []byte("old") },
			func(f *FS) (bool, error) { return f.Copy(ctx, "/d/a", "/d/b", true, true) },
			nil, false, map[string]string{"r/d/b": "A"}, "b"},
		{"a copy with Overwrite F onto an existing file is refused and changes nothing",
			func(s *memStore) { s.objs["r/d/b"] = []byte("old") },
			func(f *FS) (bool, error) { return f.Copy(ctx, "/d/a", "/d/b", false, true) },
			fs.ErrExist, false, map[string]string{"r/d/b": "old"}, ""},
		{"a file copied onto a folder replaces the folder",
			nil, func(f *FS) (bool, error) { return f.Copy(ctx, "/d/a", "/d/sub", true, true) },
			nil, false, map[string]string{"r/d/sub": "A", "r/d/sub/": "", "r/d/sub/y": ""}, "sub"},
		{"a folder copied into itself is refused",
			nil, func(f *FS) (bool, error) { return f.Copy(ctx, "/d", "/d/sub/d", true, true) },
			fs.ErrPermission, false, map[string]string{"r/d/sub/d/": ""}, ""},
		{"a copy onto its own ancestor is refused",
			nil, func(f *FS) (bool, error) { return f.Copy(ctx, "/d/sub", "/d", true, true) },
			fs.ErrPermission, false, map[string]string{"r/d/a": "A"}, ""},
		{"a move of a file is a copy and a delete that carries its entry",
			nil, func(f *FS) (bool, error) { return f.Move(ctx, "/d/a", "/d/b", true) },
			nil, true, map[string]string{"r/d/a": "", "r/d/b": "A"}, "b"},
		{"a move of a folder is refused before anything is touched",
			nil, func(f *FS) (bool, error) { return f.Move(ctx, "/d/sub", "/d/sub2", true) },
			fs.ErrPermission, false, map[string]string{"r/d/sub/y": "y", "r/d/sub2/y": ""}, ""},
		{"a move whose copy fails deletes nothing",
			func(s *memStore) { s.fail("CopyObject", "", s3vfs.ErrUnavailable) },
			func(f *FS) (bool, error) { return f.Move(ctx, "/d/a", "/d/b", true) },
			s3vfs.ErrUnavailable, false, map[string]string{"r/d/a": "A", "r/d/b": ""}, ""},
		{"a move whose delete fails leaves the source",
			func(s *memStore) { s.fail("DeleteObjects", "r/d/a", s3vfs.ErrUnavailable) },
			func(f *FS) (bool, error) { return f.Move(ctx, "/d/a", "/d/b", true) },
			s3vfs.ErrUnavailable, true, map[string]string{"r/d/a": "A", "r/d/b": "A"}, "b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newMem()
			base(s)
			if c.before != nil {
				c.before(s)
			}
			created, err := c.do(memFS(s))
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if created != c.created {
				t.Errorf("created = %v, want %v", created, c.created)
			}
			for k, want := range c.keys {
				b, ok := s.objs[k]
				if want == "" && ok && len(b) > 0 || want != "" && string(b) != want {
					t.Errorf("%s holds %q (present %v), want %q", k, b, ok, want)
				}
			}
			if c.entry != "" {
				if e := s.index(t, idxKey)[c.entry]; e.MTime != kept || e.Props != "P" || e.ETag != etagOf([]byte("A")) {
					t.Errorf("index entry %s = %+v, want the source's time and properties", c.entry, e)
				}
			}
			calls := s.counts()
			if refused := errors.Is(c.err, fs.ErrPermission) || errors.Is(c.err, fs.ErrExist); refused && calls["CopyObject"]+calls["PutObject"]+calls["DeleteObjects"] > 0 {
				t.Errorf("a refused operation wrote to S3: %v", calls)
			}
			if errors.Is(c.err, s3vfs.ErrUnavailable) && !c.created && calls["DeleteObjects"] > 0 {
				t.Errorf("a failed copy was followed by a delete: %v", calls)
			}
		})
	}
}

func TestS3CallsPerOperation(t *testing.T) {
	ctx := context.Background()
	get := func(f *FS) error { _, _, err := f.OpenRead(ctx, "/d/f", "", false); return err }
	head := func(f *FS) error { _, _, err := f.OpenRead(ctx, "/d/f", "", true); return err }
	list := func(f *FS) error { _, err := f.ReadDir(ctx, "/d"); return err }
	cases := []struct {
		name  string
		warm  func(*FS) error // an earlier request (not counted)
		do    func(*FS) error
		calls map[string]int
	}{
		{"a GET of a file is one GetObject when its folder's index was read recently",
			get,
			get,
			map[string]int{"GetObject": 1}},
		{"a GET of a file reads its folder's index alongside when it was not read recently",
			nil,
			get,
			map[string]int{"GetObject": 2}},
		{"a HEAD of a file is one HeadObject",
			head,
			head,
			map[string]int{"HeadObject": 1}},
		{"a PUT into a folder that was not listed is one LIST and one PutObject",
			nil,
			func(f *FS) error { return put(f, "/d/new") },
			map[string]int{"ListObjectsV2": 1, "PutObject": 1}},
		{"a PUT into a folder listed in the last seconds is one PutObject",
			func(f *FS) error { return put(f, "/d/first") },
			func(f *FS) error { return put(f, "/d/new") },
			map[string]int{"PutObject": 1}},
		{"a DELETE of a file listed in the last seconds without an index entry is one DeleteObject",
			list,
			func(f *FS) error { return f.RemoveAll(ctx, "/d/g") },
			map[string]int{"DeleteObjects": 1}},
		{"a DELETE of a file with an index entry also rewrites the index from a fresh copy",
			list,
			func(f *FS) error { return f.RemoveAll(ctx, "/d/f") },
			map[string]int{"DeleteObjects": 1, "GetObject": 1, "PutObject": 1}},
		{"a PROPFIND Depth 1 of 2,500 objects is three LIST pages, its parent's index and nothing per entry",
			nil,
			func(f *FS) error {
				_, l, err := f.OpenListing(ctx, "/big", true)
				if err != nil {
					return err
				}
				defer l.Close()
				n := 0
				for _, err := range l.Entries() {
					if err != nil {
						return err
					}
					n++
				}
				if n != 2499 {
					return fmt.Errorf("listed %d entries, want 2499", n)
				}
				return nil
			},
			map[string]int{"ListObjectsV2": 3, "GetObject": 1}},
		{"a whole-folder ReadDir is its LIST pages alone",
			nil,
			func(f *FS) error { _, err := f.ReadDir(ctx, "/big"); return err },
			map[string]int{"ListObjectsV2": 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newMem()
			seed(s, map[string]string{"r/d/": "", "r/d/f": "f", "r/d/g": "g"})
			putIndex(s, idxKey, map[string]metaEntry{"f": {ETag: etagOf([]byte("f")), MTime: 1}})
			s.objs["r/big/"] = nil
			for i := range 2499 {
				s.objs[fmt.Sprintf("r/big/f%05d", i)] = []byte("x")
			}
			opts := Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20), DirCache: NewDirCache(5*time.Second, 200000)}
			if c.warm != nil {
				if err := c.warm(New(s, "r/", opts)); err != nil {
					t.Fatal(err)
				}
			}
			s.counts()
			if err := c.do(New(s, "r/", opts)); err != nil {
				t.Fatal(err)
			}
			if got := s.counts(); !maps.Equal(got, c.calls) {
				t.Errorf("S3 calls %v, want %v", got, c.calls)
			}
		})
	}
}

func put(f *FS, name string) error {
	w, err := f.Create(context.Background(), name, PutOptions{Size: 1})
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("x")); err != nil {
		return err
	}
	_, err = w.Commit()
	return err
}

// TestOpenListingBringsTheFolderKeptTime: the folder a Depth 1 PROPFIND
// lists comes with the kept time its parent's index holds for it, read
// alongside the first page.
func TestOpenListingBringsTheFolderKeptTime(t *testing.T) {
	s := newMem()
	seed(s, map[string]string{"r/big/": "", "r/big/a": "a"})
	kept := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	putIndex(s, "r/"+indexName, map[string]metaEntry{"big/": {MTime: kept.UnixNano()}})
	f := New(s, "r/", Options{IndexLocks: &IndexLocks{}, IndexCache: NewIndexCache(3*time.Second, 1<<20), DirCache: NewDirCache(5*time.Second, 200000)})
	fi, l, err := f.OpenListing(context.Background(), "/big", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !fi.ModTime().Equal(kept) {
		t.Errorf("the listed folder's time is %v, want its kept %v", fi.ModTime(), kept)
	}
}
