package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// litmusAllowedFailures are the litmus tests davgw fails by design:
// move_coll (folder MOVE is refused) and lock_shared (shared locks are
// optional in RFC 4918).
var litmusAllowedFailures = map[string]bool{"move_coll": true, "lock_shared": true}

// litmusSuites must all report a summary.
var litmusSuites = []string{"basic", "copymove", "props", "locks", "http"}

var (
	litmusResult  = regexp.MustCompile(`(\d+)\. (\w+)\.*\s*(pass|FAIL|SKIPPED)(.*)`)
	litmusSummary = regexp.MustCompile("<- summary for [`']([a-z]+)': of (\\d+) tests run: (\\d+) passed, (\\d+) failed")
)

// litmusRun is what one run of litmus reported.
type litmusRun struct {
	summaries map[string]string // suite -> summary line
	ran       int               // tests run, over all suites
	passed    int
	failed    []string // "suite/test: reason"
	warnings  int
}

// parseLitmus reads litmus' output.
func parseLitmus(out string) litmusRun {
	r := litmusRun{summaries: map[string]string{}}
	suite := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-> running `") {
			suite = strings.TrimSuffix(strings.TrimPrefix(line, "-> running `"), "':")
		}
		if m := litmusSummary.FindStringSubmatch(line); m != nil {
			r.summaries[m[1]] = strings.TrimSpace(line)
			r.ran += atoi(m[2])
			r.passed += atoi(m[3])
		}
		if strings.Contains(line, "WARNING:") {
			r.warnings++
		}
		ms := litmusResult.FindAllStringSubmatch(line, -1)
		if len(ms) == 0 {
			continue
		}
		m := ms[len(ms)-1]
		if m[3] == "FAIL" {
			r.failed = append(r.failed, suite+"/"+m[2]+": "+strings.TrimSpace(m[4]))
		}
	}
	return r
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestLitmus runs every litmus suite against the gateway on each back end.
// Only move_coll and lock_shared may fail; warnings are fine.
func TestLitmus(t *testing.T) {
	bin, err := toolPath("DAVGW_LITMUS", "litmus", "")
	requireTool(t, err)

	var mu sync.Mutex
	combined := map[string]litmusRun{}
	t.Run("on every back end", func(t *testing.T) {
		for _, name := range backendNames {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := getEnv(t, name)
				run := runLitmus(t, e, bin)
				mu.Lock()
				combined[name] = run
				mu.Unlock()
			})
		}
	})

	names := make([]string, 0, len(combined))
	for n := range combined {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		r := combined[n]
		parts = append(parts, fmt.Sprintf("%s %d/%d passed, %d failed (%s), %d warnings",
			n, r.passed, r.ran, len(r.failed), failedNames(r.failed), r.warnings))
	}
	if len(parts) > 0 {
		report(t, "litmus combined: %s", strings.Join(parts, "; "))
	}
}

// runLitmus runs `litmus -k` as the litmus user in a scratch directory and
// checks its results.
func runLitmus(t *testing.T, e *davEnv, bin string) litmusRun {
	return runLitmusAt(t, e.b, e.b.name, e.URL+"/dav/", "litmus", testUsers["litmus"], bin)
}

// runLitmusAt runs `litmus -k` against url (a gateway over b, or a proxy in
// front of one) as user, whose root users/<user>/ it empties first, and
// checks its results; label names the run in reports and failures.
func runLitmusAt(t *testing.T, b *backend, label, url, user, pass, bin string) litmusRun {
	dir := t.TempDir() // litmus writes debug.log and child.log here
	// Start from an empty root so that a leftover collection cannot fail init.
	for _, k := range b.keys(t, "users/"+user+"/") {
		b.deleteS3(t, k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-k", url, user, pass)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TESTS="+strings.Join(litmusSuites, " "))
	outBytes, err := cmd.CombinedOutput()
	out := string(outBytes)
	run := parseLitmus(out)
	for _, s := range litmusSuites {
		if line, ok := run.summaries[s]; ok {
			report(t, "litmus %s: %s", label, line)
		} else {
			t.Errorf("litmus printed no summary for suite %s", s)
		}
	}
	var bad []string
	for _, f := range run.failed {
		name := f[strings.IndexByte(f, '/')+1 : strings.IndexByte(f, ':')]
		if !litmusAllowedFailures[name] {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		debug, _ := os.ReadFile(dir + "/debug.log")
		t.Errorf("litmus on %s: %d unexpected failures:\n\t%s\n(litmus exit: %v)\n--- output ---\n%s\n--- end of debug.log ---\n%s",
			label, len(bad), strings.Join(bad, "\n\t"), err, out, tail(string(debug), 6000))
	}
	if ctx.Err() != nil {
		t.Errorf("litmus on %s did not finish within 3 minutes", label)
	}
	return run
}

func failedNames(failed []string) string {
	var n []string
	for _, f := range failed {
		n = append(n, f[:strings.IndexByte(f, ':')])
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
