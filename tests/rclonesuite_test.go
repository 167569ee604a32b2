package tests

// rclone v1.76.0's own integration suites (backend/webdav TestIntegration,
// fs/sync, fs/operations), run against the gateway on versitygw the way
// rclone's developers run them against a remote: the test binaries built by
// .ci/rclone-tests.sh, with -remote dav: naming a webdav remote. Every
// (sub)test result is compared with testdata/rclone-expected-failures.txt:
// a failure not listed there fails, and so does a listed failure that no
// longer fails, so that the list stays true. An unlisted failure whose
// top-level test passes when run again on its own (rclone's own
// integration runner retries failed tests too) is reported as FLAKY
// instead.

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// rcloneTestsVersion is the rclone release whose suites run; the binaries
// are cached under rclone-tests-<version>/bin.
const rcloneTestsVersion = "v1.76.0"

// rcloneSuite is one of rclone's test packages: its test binary and the
// tests it runs ("" = all).
type rcloneSuite struct{ name, binary, run string }

// rcloneSuites are the suites run.
var rcloneSuites = []rcloneSuite{
	// TestIntegration2-4 of backend/webdav start their own servers and
	// skip themselves when -remote is set; only TestIntegration uses it.
	{"backend/webdav", "webdav.test", "^TestIntegration$"},
	{"fs/sync", "sync.test", ""},
	{"fs/operations", "operations.test", ""},
}

// rcloneSuiteTimeout bounds one test binary (the slowest takes about a
// minute here).
const rcloneSuiteTimeout = 15 * time.Minute

// rcloneSuiteRun is one test binary's run against one vendor.
type rcloneSuiteRun struct {
	suite, binary, run, vendor string
	keyPrefix                  string // the run's folder in S3
	out                        []byte
	err                        error
	took                       time.Duration
}

// rcloneRetryRun runs the top-level tests named again, on their own in a
// fresh folder, and returns their results.
type rcloneRetryRun func(tests []string) goTestResults

// TestRcloneSuites runs each suite with vendor=owncloud and vendor=other,
// all six at once (each in its own folder of alice's root: they spend
// their time waiting on the gateway, and go test's -parallel, 2 here,
// would run them two by two), then checks each one's results in a subtest
// and records the counts in the test report.
func TestRcloneSuites(t *testing.T) {
	dir, err := rcloneTestsDir()
	requireTool(t, err)
	rclone, err := toolPath("DAVGW_RCLONE176", "rclone", rcloneTestsVersion)
	requireTool(t, err)
	expected, err := parseExpectedFailures(expectedFailuresFile, expectedFailuresText)
	if err != nil {
		t.Fatal(err)
	}
	e := getEnv(t, "versitygw")
	var runs []*rcloneSuiteRun
	for _, vendor := range []string{"owncloud", "other"} {
		for _, s := range rcloneSuites {
			runs = append(runs, &rcloneSuiteRun{suite: s.name, binary: s.binary, run: s.run, vendor: vendor})
		}
	}
	retry := func(t *testing.T, r *rcloneSuiteRun, tests []string) goTestResults {
		t.Logf("running %v of %s (vendor %s) again", tests, r.suite, r.vendor)
		_, davDir := e.caseDir(t)
		quoted := make([]string, len(tests))
		for i, name := range tests {
			quoted[i] = regexp.QuoteMeta(name)
		}
		cmd := rcloneSuiteCommand(t, filepath.Join(dir, r.binary), "^("+strings.Join(quoted, "|")+")$", newRcloneRunner(t, rclone, e.URL+davDir, r.vendor))
		out, _ := cmd.CombinedOutput()
		return parseGoTestOutput(out)
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		keyPrefix, davDir := e.caseDir(t)
		r.keyPrefix = keyPrefix
		cmd := rcloneSuiteCommand(t, filepath.Join(dir, r.binary), r.run, newRcloneRunner(t, rclone, e.URL+davDir, r.vendor))
		wg.Go(func() {
			start := time.Now()
			r.out, r.err = cmd.CombinedOutput()
			r.took = time.Since(start)
		})
	}
	wg.Wait()
	for _, r := range runs {
		t.Run("with vendor "+r.vendor+" "+r.suite, func(t *testing.T) {
			// The whole output, kept with go test -artifacts.
			if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "output.txt"), r.out, 0o644); err != nil {
				t.Error(err)
			}
			res := parseGoTestOutput(r.out)
			if len(res.order) == 0 {
				t.Fatalf("%s reported no test results (%v):\n%s", r.binary, r.err, tail(string(r.out), 4000))
			}
			failed, flaky := checkFailures(r, res, expected, func(tests []string) goTestResults { return retry(t, r, tests) })
			for _, b := range failed {
				t.Error(b)
			}
			for _, b := range staleExpectations(r.suite, r.vendor, res, expected) {
				t.Error(b)
			}
			// A panic or a timeout ends the run early, without results for
			// the tests after it: the binary must end as go test does.
			if !res.complete() {
				t.Errorf("%s did not run to its end (crash or timeout?): %v\n%s", r.binary, r.err, tail(string(r.out), 4000))
			}
			var exit *exec.ExitError
			switch {
			case r.err == nil && res.anyFailed():
				t.Errorf("%s exited 0 although tests failed", r.binary)
			case r.err != nil && !(errors.As(r.err, &exit) && exit.ExitCode() == 1 && res.anyFailed()):
				t.Errorf("%s: %v, want exit status 1 with failed tests or 0", r.binary, r.err)
			}
			// rclone's tests remove what they make, also after a failure.
			if left := e.b.keys(t, r.keyPrefix); len(left) != 1 {
				t.Errorf("the suite left %d keys in its folder: %v", len(left)-1, left[:min(len(left), 20)])
			}
			n := res.counts()
			own := res.ownFailures()
			listed := 0
			for _, name := range own {
				if _, ok := lookupExpected(expected, r.suite, r.vendor, name); ok {
					listed++
				}
			}
			report(t, "rclone %s suite %s (vendor %s, versitygw): %d passed, %d failed (%d of them listed as expected, plus %d parent tests failing through them), %d skipped, %.0f s",
				rcloneTestsVersion, r.suite, r.vendor, n["PASS"], len(own), listed, n["FAIL"]-len(own), n["SKIP"], r.took.Seconds())
			for _, name := range flaky {
				t.Logf("flaky: %s failed, then passed when run again:\n%s", name, res.excerpt(name))
			}
			if len(flaky) > 0 {
				report(t, "FLAKY: rclone suite %s (vendor %s): %s failed, then passed when run again (not in the expected-failure list; its output is in the test log)",
					r.suite, r.vendor, strings.Join(flaky, ", "))
			}
		})
	}
}

// rcloneSuiteCommand is the command that runs one rclone test binary
// against the remote dav: of rc, -test.run pattern run ("" = all).
func rcloneSuiteCommand(t *testing.T, binary, run string, rc *rcloneRunner) *exec.Cmd {
	t.Helper()
	args := []string{"-test.v", "-test.timeout", rcloneSuiteTimeout.String(), "-remote", "dav:"}
	if run != "" {
		args = append(args, "-test.run", run)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rcloneSuiteTimeout+time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, args...)
	// rclone's fstests look for the start scripts of its own test servers
	// in fstest/testserver/init.d above the working folder; dav: has
	// none, so an empty folder is enough.
	cmd.Dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(cmd.Dir, "fstest", "testserver", "init.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(slices.Clone(rc.env), "TMPDIR="+t.TempDir())
	return cmd
}

// rcloneTestsDir is where .ci/rclone-tests.sh put the test binaries:
// $DAVGW_RCLONE_TESTS, else the tools cache.
func rcloneTestsDir() (string, error) {
	dir := os.Getenv("DAVGW_RCLONE_TESTS")
	if dir == "" {
		dir = filepath.Join(toolsCache(), "rclone-tests-"+rcloneTestsVersion, "bin")
	}
	for _, s := range rcloneSuites {
		if st, err := os.Stat(filepath.Join(dir, s.binary)); err != nil || st.IsDir() {
			return "", fmt.Errorf("%w: rclone %s test binary %s in %s (run `eval \"$(bash .ci/rclone-tests.sh)\"`, which sets DAVGW_RCLONE_TESTS)",
				errToolMissing, rcloneTestsVersion, s.binary, dir)
		}
	}
	return dir, nil
}

// goTestResults are the --- PASS/FAIL/SKIP lines of a go test -v run.
type goTestResults struct {
	status map[string]string // test name -> PASS, FAIL or SKIP
	order  []string          // names in the order reported
	lines  [][]byte          // the whole output, for failure excerpts
}

var goTestResultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)

func parseGoTestOutput(out []byte) goTestResults {
	r := goTestResults{status: map[string]string{}, lines: bytes.Split(out, []byte("\n"))}
	for _, line := range r.lines {
		if m := goTestResultLine.FindSubmatch(line); m != nil {
			name := string(m[2])
			if _, seen := r.status[name]; !seen {
				r.order = append(r.order, name)
			}
			r.status[name] = string(m[1])
		}
	}
	return r
}

func (r goTestResults) counts() map[string]int {
	n := map[string]int{}
	for _, s := range r.status {
		n[s]++
	}
	return n
}

// complete reports whether the run ended as a go test binary does: its
// last line PASS or FAIL, and no panic.
func (r goTestResults) complete() bool {
	last := ""
	for _, line := range r.lines {
		l := strings.TrimSpace(string(line))
		if strings.HasPrefix(l, "panic: ") {
			return false
		}
		if l != "" {
			last = l
		}
	}
	return last == "PASS" || last == "FAIL"
}

func (r goTestResults) anyFailed() bool { return r.counts()["FAIL"] > 0 }

// ownFailures are the failed tests with no failed subtest.
func (r goTestResults) ownFailures() []string {
	var own []string
	for _, name := range r.order {
		if r.status[name] == "FAIL" && !r.failedChild(name) {
			own = append(own, name)
		}
	}
	return own
}

// failedChild reports whether a subtest of name failed: go test fails a
// parent whenever a child fails, so such a parent needs no entry of its own.
func (r goTestResults) failedChild(name string) bool {
	for n, s := range r.status {
		if s == "FAIL" && strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

// excerpt returns the output test name printed: the lines after its last
// "=== RUN/CONT/NAME" line up to the next such line or result line, at
// most 60.
func (r goTestResults) excerpt(name string) string {
	start := -1
	for i, line := range r.lines {
		if f := strings.Fields(string(line)); len(f) == 3 && f[0] == "===" && f[2] == name {
			start = i
		}
	}
	if start < 0 {
		return ""
	}
	end := start + 1
	for end < len(r.lines) && end-start <= 60 {
		line := strings.TrimSpace(string(r.lines[end]))
		if strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- ") {
			break
		}
		end++
	}
	return string(bytes.Join(r.lines[start:end], []byte("\n")))
}

// expectedFailure is one line of the expected-failure file.
type expectedFailure struct {
	suite, test string
	vendors     []string
	reason      string
}

// expectedFailuresFile lists the expected failures; embedded, since the
// embedded store changes the working directory.
const expectedFailuresFile = "testdata/rclone-expected-failures.txt"

//go:embed testdata/rclone-expected-failures.txt
var expectedFailuresText string

// parseExpectedFailures reads lines of "suite test vendors reason..."
// (vendors comma-separated); # starts a comment. name is for errors.
func parseExpectedFailures(name, text string) ([]expectedFailure, error) {
	var list []expectedFailure
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 {
			return nil, fmt.Errorf("%s:%d: want \"suite test vendors reason\", got %q", name, n+1, line)
		}
		list = append(list, expectedFailure{
			suite: fields[0], test: fields[1], vendors: strings.Split(fields[2], ","),
			reason: strings.Join(fields[3:], " "),
		})
	}
	return list, nil
}

// lookupExpected returns the entry for a test of suite with vendor.
func lookupExpected(list []expectedFailure, suite, vendor, test string) (expectedFailure, bool) {
	for _, x := range list {
		if x.suite == suite && x.test == test && slices.Contains(x.vendors, vendor) {
			return x, true
		}
	}
	return expectedFailure{}, false
}

// unexpectedFailures are the failed tests (those with no failed subtest)
// the list does not expect.
func unexpectedFailures(suite, vendor string, res goTestResults, list []expectedFailure) []string {
	var names []string
	for _, name := range res.ownFailures() {
		if _, ok := lookupExpected(list, suite, vendor, name); !ok {
			names = append(names, name)
		}
	}
	return names
}

// staleExpectations returns a message for every listed failure that did
// not fail.
func staleExpectations(suite, vendor string, res goTestResults, list []expectedFailure) []string {
	var bad []string
	for _, x := range list {
		if x.suite != suite || !slices.Contains(x.vendors, vendor) {
			continue
		}
		if got := res.status[x.test]; got != "FAIL" {
			if got == "" {
				got = "did not run"
			}
			bad = append(bad, fmt.Sprintf("%s %s (vendor %s) is listed as an expected failure (%s) but %s: update tests/testdata/rclone-expected-failures.txt",
				suite, x.test, vendor, x.reason, got))
		}
	}
	return bad
}

// checkFailures returns a message for each unexpected failure of r that
// fails again when its top-level test runs again on its own (as rclone's
// own integration runner retries failed tests), and the names of those
// that then pass, for the report to name as flaky.
func checkFailures(r *rcloneSuiteRun, res goTestResults, list []expectedFailure, retry rcloneRetryRun) (failed, flaky []string) {
	unexpected := unexpectedFailures(r.suite, r.vendor, res, list)
	if len(unexpected) == 0 {
		return nil, nil
	}
	var top []string
	for _, name := range unexpected {
		if first, _, _ := strings.Cut(name, "/"); !slices.Contains(top, first) {
			top = append(top, first)
		}
	}
	again := retry(top)
	for _, name := range unexpected {
		if again.status[name] == "PASS" {
			flaky = append(flaky, name)
			continue
		}
		failed = append(failed, fmt.Sprintf("%s %s (vendor %s) failed and is not in tests/testdata/rclone-expected-failures.txt (run again on its own: %s):\n%s",
			r.suite, name, r.vendor, cmp.Or(again.status[name], "did not run"), res.excerpt(name)))
	}
	return failed, flaky
}

// TestRcloneSuiteResultsAreCheckedAgainstTheList checks the checker on a
// made-up go test -v output, without rclone.
func TestRcloneSuiteResultsAreCheckedAgainstTheList(t *testing.T) {
	out := []byte(`=== RUN   TestA
=== RUN   TestA/listed
    x_test.go:1: listed failure
=== RUN   TestA/new
    x_test.go:2: DirMove MOVE call failed: Forbidden: 403 Forbidden
=== RUN   TestA/fixed
--- FAIL: TestA (0.10s)
    --- FAIL: TestA/listed (0.01s)
    --- FAIL: TestA/new (0.01s)
    --- PASS: TestA/fixed (0.01s)
=== RUN   TestB
--- SKIP: TestB (0.00s)
FAIL
`)
	list := []expectedFailure{
		{suite: "s", test: "TestA/listed", vendors: []string{"other"}, reason: "r1"},
		{suite: "s", test: "TestA/fixed", vendors: []string{"other"}, reason: "r2"},
		{suite: "s", test: "TestA/new", vendors: []string{"owncloud"}, reason: "r3"},
		{suite: "s", test: "TestGone", vendors: []string{"other"}, reason: "r4"},
	}
	res := parseGoTestOutput(out)
	if got, want := res.ownFailures(), []string{"TestA/listed", "TestA/new"}; !slices.Equal(got, want) {
		t.Errorf("ownFailures = %v, want %v (TestA fails only through its subtests)", got, want)
	}
	if n := res.counts(); n["PASS"] != 1 || n["FAIL"] != 3 || n["SKIP"] != 1 {
		t.Errorf("counts = %v, want 1 PASS, 3 FAIL, 1 SKIP", n)
	}
	run := &rcloneSuiteRun{suite: "s", vendor: "other"}
	var retried []string
	failed, flaky := checkFailures(run, res, list, func(tests []string) goTestResults {
		retried = tests
		return parseGoTestOutput([]byte("--- FAIL: TestA (0.10s)\n    --- FAIL: TestA/new (0.01s)\nFAIL\n"))
	})
	if !slices.Equal(retried, []string{"TestA"}) || len(flaky) != 0 || len(failed) != 1 {
		t.Fatalf("retried %v; failed %q, flaky %v; want TestA retried and TestA/new failed", retried, failed, flaky)
	}
	if w := "s TestA/new (vendor other) failed and is not in tests/testdata/rclone-expected-failures.txt (run again on its own: FAIL)"; !strings.HasPrefix(failed[0], w) {
		t.Errorf("failure = %q, want it to start with %q", failed[0], w)
	}
	if !strings.Contains(failed[0], "403 Forbidden") || strings.Contains(failed[0], "TestA/fixed") {
		t.Errorf("the excerpt of TestA/new should be its own output only:\n%s", failed[0])
	}
	failed, flaky = checkFailures(run, res, list, func([]string) goTestResults {
		return parseGoTestOutput([]byte("    --- PASS: TestA/new (0.01s)\nPASS\n"))
	})
	if len(failed) != 0 || !slices.Equal(flaky, []string{"TestA/new"}) {
		t.Errorf("a failure that passes when run again: failed %q, flaky %v, want it flaky", failed, flaky)
	}
	stale := staleExpectations("s", "other", res, list)
	want := []string{
		"s TestA/fixed (vendor other) is listed as an expected failure (r2) but PASS",
		"s TestGone (vendor other) is listed as an expected failure (r4) but did not run",
	}
	if len(stale) != len(want) {
		t.Fatalf("staleExpectations gave %d problems, want %d:\n%s", len(stale), len(want), strings.Join(stale, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(stale[i], w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, stale[i], w)
		}
	}
	if !res.complete() {
		t.Error("a run that ends with FAIL is not complete")
	}
	if parseGoTestOutput([]byte("=== RUN   TestA\npanic: boom\n\ngoroutine 1 [running]:\n")).complete() {
		t.Error("a run that panicked is complete")
	}
	if parseGoTestOutput([]byte("=== RUN   TestA\n--- PASS: TestA (0.00s)\n")).complete() {
		t.Error("a run without its final PASS or FAIL line is complete")
	}
	if _, err := parseExpectedFailures("short", "fs/sync TestX other"); err == nil {
		t.Error("a line without a reason was accepted")
	}
	if list, err := parseExpectedFailures(expectedFailuresFile, expectedFailuresText); err != nil || len(list) == 0 {
		t.Errorf("%s: %d entries, %v", expectedFailuresFile, len(list), err)
	} else {
		for _, x := range list {
			if !slices.ContainsFunc(rcloneSuites, func(s rcloneSuite) bool { return s.name == x.suite }) {
				t.Errorf("expected failure %s names an unknown suite %q", x.test, x.suite)
			}
			for _, v := range x.vendors {
				if v != "owncloud" && v != "other" {
					t.Errorf("expected failure %s names an unknown vendor %q", x.test, v)
				}
			}
		}
	}
}
