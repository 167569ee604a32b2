package tests

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const lockBody = `<?xml version="1.0" encoding="utf-8"?>` +
	`<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>` +
	`<D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:alice@example.com</D:href></D:owner></D:lockinfo>`

// lock LOCKs path as alice and returns the reply and its token (without <>).
func (e *davEnv) lock(t *testing.T, path string, want ...int) (reply, string) {
	t.Helper()
	r := e.alice(t, "LOCK", path, map[string]string{"Timeout": "Second-600", "Depth": "0"}, []byte(lockBody))
	expect(t, "LOCK "+path, r, want...)
	tok := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Lock-Token"), "<"), ">")
	if tok == "" {
		t.Fatalf("LOCK %s answered no Lock-Token header: %s", path, r)
	}
	return r, tok
}

// tokenEntropy returns the hex digits of a token, without scheme or dashes.
func tokenEntropy(tok string) string {
	if i := strings.LastIndexByte(tok, ':'); i >= 0 {
		tok = tok[i+1:]
	}
	var b strings.Builder
	for _, c := range strings.ToLower(tok) {
		if strings.ContainsRune("0123456789abcdef", c) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// activeLocks decodes the lockdiscovery of a LOCK answer.
func activeLocks(t *testing.T, body []byte) []activeLock {
	t.Helper()
	var p struct {
		Locks []activeLock `xml:"DAV: lockdiscovery>activelock"`
	}
	if err := xml.Unmarshal(body, &p); err != nil {
		t.Fatalf("LOCK body does not parse: %v\n%s", err, truncate(string(body), 2000))
	}
	return p.Locks
}

type activeLock struct {
	Timeout  string `xml:"DAV: timeout"`
	LockRoot string `xml:"DAV: lockroot>href"`
	Token    string `xml:"DAV: locktoken>href"`
}

// unlock releases a lock taken by a case.
func (e *davEnv) unlock(t *testing.T, path, tok string) {
	t.Helper()
	u := e.alice(t, "UNLOCK", path, map[string]string{"Lock-Token": "<" + tok + ">"}, nil)
	expect(t, "UNLOCK "+path, u, http.StatusNoContent)
}

func lockCases() []conformanceCase {
	return []conformanceCase{
		{"DELETE of a folder holding a locked file answers 423 without the token and keeps the file", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"folder/", nil, "")
			e.putS3(t, keyPrefix+"folder/locked.txt", []byte("locked"), "")
			e.putS3(t, keyPrefix+"folder/other.txt", []byte("other"), "")
			before := e.b.snapshot(t, keyPrefix)
			_, tok := e.lock(t, dir+"folder/locked.txt", http.StatusOK)
			d := e.alice(t, http.MethodDelete, dir+"folder/", nil, nil)
			expect(t, "DELETE of the folder without the lock token", d, http.StatusLocked)
			if got, ok := e.getS3(t, keyPrefix+"folder/locked.txt"); !ok || string(got) != "locked" {
				t.Errorf("the locked file holds %q (exists=%v) after the refused DELETE", got, ok)
			}
			if diff := diffSnapshots(before, e.b.snapshot(t, keyPrefix)); diff != "" {
				t.Errorf("the refused DELETE changed S3: %s", diff)
			}
			e.unlock(t, dir+"folder/locked.txt", tok)
		}},
		{"LOCK caps an infinite timeout at an hour and names the escaped path in lockroot", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"a b.txt", []byte("spaced"), "")
			r := e.alice(t, "LOCK", dir+"a%20b.txt",
				map[string]string{"Timeout": "Infinite, Second-4100000000", "Depth": "0"}, []byte(lockBody))
			expect(t, "LOCK with Timeout: Infinite, Second-4100000000", r, http.StatusOK)
			locks := activeLocks(t, r.Body)
			if len(locks) != 1 {
				t.Fatalf("LOCK answered %d activelocks, want 1: %s", len(locks), r)
			}
			l := locks[0]
			if got := strings.TrimSpace(l.Timeout); got != "Second-3600" {
				t.Errorf("lockdiscovery timeout = %q, want Second-3600", got)
			}
			want := dir + "a%20b.txt"
			if got := strings.TrimPrefix(strings.TrimSpace(l.LockRoot), e.URL); got != want {
				t.Errorf("lockroot href = %q, want %q", l.LockRoot, want)
			}
			tok := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Lock-Token"), "<"), ">")
			if tok == "" || strings.TrimSpace(l.Token) != tok {
				t.Errorf("locktoken href = %q, Lock-Token header %q", l.Token, r.Header.Get("Lock-Token"))
			}
			if tok != "" {
				e.unlock(t, dir+"a%20b.txt", tok)
			}
		}},
		{"LOCK of a missing name answers 201 with an empty object, and 409 when its parent is missing", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			r := e.alice(t, "LOCK", dir+"nowhere/new.txt", map[string]string{"Timeout": "Second-600", "Depth": "0"}, []byte(lockBody))
			expect(t, "LOCK of a name whose parent is missing", r, http.StatusConflict)
			if keys := e.b.keys(t, keyPrefix); len(keys) != 1 {
				t.Errorf("keys after the refused LOCK = %v, want only the case folder", keys)
			}
			_, tok := e.lock(t, dir+"new.txt", http.StatusCreated)
			if _, size, _, ok := e.headS3(t, keyPrefix+"new.txt"); !ok || size != 0 {
				t.Errorf("after LOCK of a missing name S3 has exists=%v size=%d, want an empty object", ok, size)
			}
			e.unlock(t, dir+"new.txt", tok)
		}},
		{"LOCK of a file answers 200 with a token that a PUT must present", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"locked.txt", []byte("v1"), "")
			r, tok := e.lock(t, dir+"locked.txt", http.StatusOK)
			if !strings.Contains(string(r.Body), "lockdiscovery") || !strings.Contains(string(r.Body), tok) {
				t.Errorf("LOCK body lacks lockdiscovery with the token: %s", r)
			}
			p := e.alice(t, http.MethodPut, dir+"locked.txt", nil, []byte("v2 without token"))
			expect(t, "PUT without the lock token", p, http.StatusLocked)
			if got, _ := e.getS3(t, keyPrefix+"locked.txt"); string(got) != "v1" {
				t.Fatalf("a PUT without the token changed the object to %q", got)
			}
			d := e.alice(t, http.MethodDelete, dir+"locked.txt", nil, nil)
			expect(t, "DELETE without the lock token", d, http.StatusLocked)
			ok := e.alice(t, http.MethodPut, dir+"locked.txt", map[string]string{"If": "(<" + tok + ">)"}, []byte("v2 with token"))
			expect(t, "PUT with the lock token", ok, http.StatusNoContent)
			if got, _ := e.getS3(t, keyPrefix+"locked.txt"); string(got) != "v2 with token" {
				t.Errorf("S3 holds %q after the PUT with the token", got)
			}
			u := e.alice(t, "UNLOCK", dir+"locked.txt", map[string]string{"Lock-Token": "<" + tok + ">"}, nil)
			expect(t, "UNLOCK", u, http.StatusNoContent)
			after := e.alice(t, http.MethodPut, dir+"locked.txt", nil, []byte("v3 unlocked"))
			expect(t, "PUT after UNLOCK", after, http.StatusNoContent)
		}},
		{"LOCK with a lockinfo body and If naming the held lock refreshes it (the npm webdav client's refresh)", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"held.txt", []byte("v1"), "")
			e.putS3(t, keyPrefix+"other.txt", []byte("v1"), "")
			_, tok := e.lock(t, dir+"held.txt", http.StatusOK)
			_, otherTok := e.lock(t, dir+"other.txt", http.StatusOK)
			refresh := func(path, ifHeader string) reply {
				return e.alice(t, "LOCK", path, map[string]string{"Timeout": "Second-120", "If": ifHeader}, []byte(lockBody))
			}
			r := refresh(dir+"held.txt", "(<"+tok+">)")
			expect(t, "LOCK with a body and If: (<its token>)", r, http.StatusOK)
			if locks := activeLocks(t, r.Body); len(locks) != 1 || strings.TrimSpace(locks[0].Token) != tok || strings.TrimSpace(locks[0].Timeout) != "Second-120" {
				t.Errorf("refresh answered %+v, want the same token with Second-120", locks)
			}
			// Another lock's token is not this one's refresh: the If
			// header fails (412), and so does one that negates the token.
			expect(t, "LOCK with a body and If naming another file's lock", refresh(dir+"held.txt", "(<"+otherTok+">)"), http.StatusPreconditionFailed)
			expect(t, "LOCK with a body and If: (Not <its token>)", refresh(dir+"held.txt", "(Not <"+tok+">)"), http.StatusPreconditionFailed)
			e.unlock(t, dir+"held.txt", tok)
			e.unlock(t, dir+"other.txt", otherTok)
			// Once the lock is gone its token is stale: 412, no new lock.
			expect(t, "LOCK with a body and a stale token in If", refresh(dir+"held.txt", "(<"+tok+">)"), http.StatusPreconditionFailed)
			_, fresh := e.lock(t, dir+"held.txt", http.StatusOK) // the file was not left locked
			e.unlock(t, dir+"held.txt", fresh)
		}},
		{"LOCK with a lockinfo body on a member of a deep-locked folder, If naming the folder's lock, is a new lock: 423", func(t *testing.T, e *davEnv) {
			// The npm client refreshes on the name it locked: a body with
			// the token of a lock above the name asks for a new lock inside
			// an exclusive one, not a refresh of the folder's lock.
			_, dir := e.caseDir(t)
			deep := e.alice(t, "LOCK", dir, map[string]string{"Timeout": "Second-600", "Depth": "infinity"}, []byte(lockBody))
			expect(t, "deep LOCK of the folder", deep, http.StatusOK)
			dtok := strings.Trim(deep.Header.Get("Lock-Token"), "<>")
			r := e.alice(t, "LOCK", dir+"new.txt", map[string]string{"Timeout": "Second-600", "Depth": "0", "If": "(<" + dtok + ">)"}, []byte(lockBody))
			expect(t, "LOCK of a new member with a body and If: (<the folder's token>)", r, http.StatusLocked)
			expect(t, "GET of the member", e.alice(t, "GET", dir+"new.txt", nil, nil), http.StatusNotFound)
			// The folder's own name with its token is the npm refresh.
			ref := e.alice(t, "LOCK", dir, map[string]string{"Timeout": "Second-120", "If": "(<" + dtok + ">)"}, []byte(lockBody))
			expect(t, "LOCK of the folder with a body and If: (<its token>)", ref, http.StatusOK)
			e.unlock(t, dir, dtok)
		}},
		{"LOCK with a lockinfo body honours If: 412 when its ETag changed, a lock when it matches", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			etag := e.putS3(t, keyPrefix+"f.txt", []byte("v1"), "")
			lockIf := func(ifHeader string) reply {
				return e.alice(t, "LOCK", dir+"f.txt", map[string]string{"Timeout": "Second-60", "Depth": "0", "If": ifHeader}, []byte(lockBody))
			}
			expect(t, `LOCK with If: (["another etag"])`, lockIf(`(["0123456789abcdef0123456789abcdef"])`), http.StatusPreconditionFailed)
			expect(t, "LOCK with If: (<a token no lock has>)", lockIf("(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)"), http.StatusPreconditionFailed)
			expect(t, "LOCK with a malformed If", lockIf("no list"), http.StatusBadRequest)
			// Empty tags are no tags: "[]" is no entity tag (it was taken
			// for the state token "", so Not [] held), "<>" no resource.
			expect(t, "LOCK with If: (Not [])", lockIf("(Not [])"), http.StatusBadRequest)
			expect(t, "LOCK with If: <> (Not <DAV:no-lock>)", lockIf("<> (Not <DAV:no-lock>)"), http.StatusBadRequest)
			ok := lockIf("([" + etag + "])")
			expect(t, "LOCK with If: ([its etag])", ok, http.StatusOK)
			e.unlock(t, dir+"f.txt", strings.Trim(ok.Header.Get("Lock-Token"), "<>"))
		}},
		{"LOCK of a missing path creates an empty file with 201", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			_, tok := e.lock(t, dir+"finder.txt", http.StatusCreated)
			if _, size, _, ok := e.headS3(t, keyPrefix+"finder.txt"); !ok || size != 0 {
				t.Errorf("after LOCK of a missing path S3 has exists=%v size=%d, want an empty object", ok, size)
			}
			g := e.alice(t, http.MethodGet, dir+"finder.txt", nil, nil)
			expect(t, "GET of the locked empty file", g, http.StatusOK)
			p := e.alice(t, http.MethodPut, dir+"finder.txt", map[string]string{"If": "(<" + tok + ">)"}, []byte("written"))
			expect(t, "PUT with the token", p, http.StatusNoContent)
			u := e.alice(t, "UNLOCK", dir+"finder.txt", map[string]string{"Lock-Token": "<" + tok + ">"}, nil)
			expect(t, "UNLOCK", u, http.StatusNoContent)
		}},
		{"lock tokens are random, not a counter", func(t *testing.T, e *davEnv) {
			keyPrefix, dir := e.caseDir(t)
			e.putS3(t, keyPrefix+"one.txt", []byte("1"), "")
			e.putS3(t, keyPrefix+"two.txt", []byte("2"), "")
			_, t1 := e.lock(t, dir+"one.txt", http.StatusOK)
			_, t2 := e.lock(t, dir+"two.txt", http.StatusOK)
			t.Logf("two lock tokens: %s and %s", t1, t2)
			h1, h2 := tokenEntropy(t1), tokenEntropy(t2)
			if len(h1) < 32 || len(h2) < 32 {
				t.Errorf("tokens %q and %q carry fewer than 128 bits of hex", t1, t2)
			}
			differ := 0
			for i := 0; i < len(h1) && i < len(h2); i++ {
				if h1[i] != h2[i] {
					differ++
				}
			}
			if differ < 16 {
				t.Errorf("tokens %q and %q differ in only %d hex digits: guessable", t1, t2, differ)
			}
			for _, p := range []struct{ path, tok string }{{"one.txt", t1}, {"two.txt", t2}} {
				u := e.alice(t, "UNLOCK", dir+p.path, map[string]string{"Lock-Token": "<" + p.tok + ">"}, nil)
				expect(t, "UNLOCK "+p.path, u, http.StatusNoContent)
			}
		}},
	}
}

// refreshWhileInUse: a client refreshes its lock while one of its own
// requests uses it (Finder and Explorer refresh every few minutes, also
// during a long upload under the lock). The refresh answers 200 with the
// new timeout, and the lock outlives its first timeout: after the upload
// it still blocks writes without its token and admits them with it.
func refreshWhileInUse(t *testing.T, e *davEnv) {
	_, dir := e.caseDir(t)
	f := dir + "in-use.bin"
	l := e.alice(t, "LOCK", f, map[string]string{"Timeout": "Second-2", "Depth": "0"}, []byte(lockBody))
	expect(t, "LOCK "+f, l, http.StatusCreated)
	tok := strings.Trim(l.Header.Get("Lock-Token"), "<>")
	ifTok := map[string]string{"If": "(<" + tok + ">)"}
	locked := time.Now()

	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // a failed case does not leave the PUT hanging
	put := make(chan reply, 1)
	go func() {
		put <- e.do(t, req{Method: "PUT", Path: f, User: "alice", Header: ifTok, Body: pr, Length: -1})
	}()
	if _, err := pw.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the PUT holds the lock while its body comes

	for _, body := range [][]byte{nil, []byte(lockBody)} { // RFC 4918's refresh, then the npm client's
		r := e.alice(t, "LOCK", f, map[string]string{"Timeout": "Second-600", "If": "(<" + tok + ">)"}, body)
		expect(t, fmt.Sprintf("LOCK refresh (body of %d bytes) while a PUT uses the lock", len(body)), r, http.StatusOK)
		if locks := activeLocks(t, r.Body); len(locks) != 1 || strings.TrimSpace(locks[0].Token) != tok || strings.TrimSpace(locks[0].Timeout) != "Second-600" {
			t.Fatalf("the refresh answered %+v, want %s with Second-600", locks, tok)
		}
	}
	time.Sleep(time.Until(locked.Add(2500 * time.Millisecond))) // past the first timeout
	if _, err := pw.Write([]byte("end")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	expect(t, "the PUT under the lock", <-put, http.StatusCreated, http.StatusNoContent)
	expect(t, "PUT without the token after the refresh", e.alice(t, "PUT", f, nil, []byte("x")), http.StatusLocked)
	expect(t, "PUT with the token after the refresh", e.alice(t, "PUT", f, ifTok, []byte("y")), http.StatusNoContent)
	e.unlock(t, f, tok)
}

func TestALockRefreshesWhileARequestUsesIt(t *testing.T) {
	refreshWhileInUse(t, getEnv(t, "versitygw"))
}
