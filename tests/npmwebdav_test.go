package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/davgw/davgw/gateway"
)

// The npm `webdav` client (5.x, the WebDAV client of most web and
// Electron apps) against the gateway on every back end:
// tests/npm/webdav-client.mjs runs its scenarios and reports each as a
// JSON line; this test fails every scenario the script saw fail and checks
// S3 at each step the script names.

// npmUser is the user the script signs in as: its root holds only what
// the script writes, so the quota it reads can be checked exactly.
const npmUser = "jsclient"

// npmQuota is [webdav].quota_bytes for the script's gateway (getQuota).
const npmQuota = 1 << 30

// npmScenarios is how many scenarios the script runs: one that vanishes
// from it fails here.
const npmScenarios = 37

// npmLine is one line of the script's output.
type npmLine struct {
	Scenario string `json:"scenario"`
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	S3       *struct {
		Files map[string]struct {
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
		Absent  []string `json:"absent"`
		Folders []string `json:"folders"`
	} `json:"s3"`
	Quota *struct {
		Used      int64 `json:"used"`
		Available int64 `json:"available"`
	} `json:"quota"`
	Done     bool `json:"done"`
	Failures int  `json:"failures"`
}

// npmWebdavDir finds the folder .ci/npm-webdav.sh installed the client
// into: $DAVGW_NPM_WEBDAV, else the tools cache for the version that
// .ci/tools/npm-webdav/package.json pins.
func npmWebdavDir() (string, error) {
	dir := os.Getenv("DAVGW_NPM_WEBDAV")
	if dir == "" {
		pkg, err := os.ReadFile(filepath.Join(testsDir, "..", ".ci", "tools", "npm-webdav", "package.json"))
		if err != nil {
			return "", err
		}
		var p struct {
			Dependencies map[string]string `json:"dependencies"`
		}
		if err := json.Unmarshal(pkg, &p); err != nil {
			return "", fmt.Errorf(".ci/tools/npm-webdav/package.json: %w", err)
		}
		cache := os.Getenv("DAVGW_TOOLS_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "davgw-tools")
		}
		dir = filepath.Join(cache, "npm-webdav-"+p.Dependencies["webdav"])
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "webdav", "package.json")); err != nil {
		return "", fmt.Errorf("%w: the npm webdav client in %s (run .ci/npm-webdav.sh or set DAVGW_NPM_WEBDAV)", errToolMissing, dir)
	}
	return dir, nil
}

// TestNpmWebdav runs tests/npm/webdav-client.mjs against a gateway with a
// quota on each back end.
func TestNpmWebdav(t *testing.T) {
	node, err := toolPath("DAVGW_NODE", "node", "")
	requireTool(t, err)
	mod, err := npmWebdavDir()
	requireTool(t, err)
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := tunedEnv(t, name, func(o *gateway.Options) { o.QuotaBytes = npmQuota })
			runNpmWebdav(t, e, node, mod)
		})
	}
}

func runNpmWebdav(t *testing.T, e *davEnv, node, mod string) {
	folder := "npm webdav " + randHex(3)
	prefix := "users/" + npmUser + "/" + folder + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testsDir, "npm", "webdav-client.mjs"))
	cmd.Env = append(os.Environ(),
		"DAVGW_NPM_WEBDAV="+mod,
		"DAV_URL="+e.URL+"/dav/",
		"DAV_USER="+npmUser,
		"DAV_PASS="+testUsers[npmUser],
		"DAV_DIR="+folder,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 4<<20)
	var done *npmLine
	seen, passed, refused := 0, 0, 0
	for lines.Scan() {
		var l npmLine
		if err := json.Unmarshal(lines.Bytes(), &l); err != nil {
			t.Errorf("a line that is not JSON: %q", lines.Text())
			continue
		}
		if l.Done {
			done = &l
			break
		}
		seen++
		if !l.OK {
			refused++
		}
		t.Run(l.Scenario, func(t *testing.T) {
			if !l.OK {
				t.Errorf("the npm client saw: %s", l.Error)
			}
			if l.S3 != nil {
				checkNpmS3(t, e, prefix, l)
			}
			if l.Quota != nil {
				// Everything the gateway counts is in S3 under the root.
				var used int64
				for _, o := range e.b.snapshot(t, "users/"+npmUser+"/") {
					used += o.Size
				}
				if l.Quota.Used != used || l.Quota.Available != npmQuota-used {
					t.Errorf("getQuota gave used %d, available %d; S3 holds %d bytes under the root, quota %d",
						l.Quota.Used, l.Quota.Available, used, npmQuota)
				}
			}
			if !t.Failed() {
				passed++
			}
		})
		if _, err := io.WriteString(stdin, "next\n"); err != nil {
			t.Errorf("tell the script to go on: %v", err)
			break
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("node: %v\n%s", err, tail(stderr.String(), 4000))
	}
	switch {
	case done == nil:
		t.Errorf("the script stopped before its last scenario (%d seen)", seen)
	case done.Failures != refused:
		t.Errorf("the script counted %d failures, its lines %d", done.Failures, refused)
	case seen != npmScenarios:
		t.Errorf("the script ran %d scenarios, want %d (update npmScenarios with the script)", seen, npmScenarios)
	}
	report(t, "npm webdav on %s: %d/%d scenarios passed", e.b.name, passed, seen)
}

// checkNpmS3 checks S3 against what a scenario says it must hold; paths are
// relative to the script's folder, "" and names ending in "/" are folders.
func checkNpmS3(t *testing.T, e *davEnv, prefix string, l npmLine) {
	t.Helper()
	for rel, want := range l.S3.Files {
		body, ok := e.getS3(t, prefix+rel)
		if !ok {
			t.Errorf("S3 has no %q", prefix+rel)
			continue
		}
		sum := sha256.Sum256(body)
		if int64(len(body)) != want.Size || hex.EncodeToString(sum[:]) != want.SHA256 {
			t.Errorf("S3 %q holds %d bytes (sha256 %x), want %d (%s)", prefix+rel, len(body), sum, want.Size, want.SHA256)
		}
	}
	for _, rel := range l.S3.Absent {
		if rel == "" || strings.HasSuffix(rel, "/") {
			if keys := e.b.keys(t, prefix+rel); len(keys) != 0 {
				t.Errorf("S3 still holds %v under %q", keys, prefix+rel)
			}
			continue
		}
		if _, _, _, ok := e.headS3(t, prefix+rel); ok {
			t.Errorf("S3 still holds %q", prefix+rel)
		}
	}
	for _, rel := range l.S3.Folders {
		if keys := e.b.keys(t, prefix+rel+"/"); len(keys) == 0 {
			t.Errorf("S3 holds nothing under %q (folder %q)", prefix+rel+"/", rel)
		}
	}
}

// TestBrowserCORS: davgw sends no CORS headers, so a web app on another
// origin cannot call it from a browser (docs/clients/javascript.md says
// what to put in front of it).
func TestBrowserCORS(t *testing.T) {
	e := getEnv(t, "versitygw")
	preflight := e.do(t, req{Method: http.MethodOptions, Path: "/dav/", Header: map[string]string{
		"Origin":                         "https://app.example",
		"Access-Control-Request-Method":  "PROPFIND",
		"Access-Control-Request-Headers": "authorization,depth,content-type",
	}})
	expect(t, "preflight OPTIONS", preflight, http.StatusOK)
	withOrigin := e.do(t, req{Method: "PROPFIND", Path: "/dav/", User: "alice", Header: map[string]string{
		"Origin": "https://app.example", "Depth": "0",
	}})
	expect(t, "PROPFIND with an Origin", withOrigin, http.StatusMultiStatus)
	for what, r := range map[string]reply{"preflight": preflight, "PROPFIND": withOrigin} {
		for k := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				t.Errorf("%s answered %s: %q (update docs/clients/javascript.md)", what, k, r.Header.Get(k))
			}
		}
	}
}
