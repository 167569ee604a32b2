package tests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BENCHMARKS.md is written by two commands: `bash .ci/bench` (the table and
// "Kept times at scale") and `bash .ci/load` ("Mixed load"). Each replaces
// only its own parts of the file, so running one never drops what the
// other measured; each part names the commit and the machine it ran on.

// benchSection is a part of BENCHMARKS.md: "" is the part before the first
// "## " heading (the title and the table), anything else a "## " heading.
type benchSection struct {
	heading string
	body    string // including the heading line
}

// splitBenchFile cuts a BENCHMARKS.md into its parts, in order.
func splitBenchFile(doc string) []benchSection {
	var out []benchSection
	cur := benchSection{}
	for line := range strings.SplitAfterSeq(doc, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			if cur.heading != "" || cur.body != "" {
				out = append(out, cur)
			}
			cur = benchSection{heading: strings.TrimSpace(h)}
		}
		cur.body += line
	}
	if cur.heading != "" || cur.body != "" {
		out = append(out, cur)
	}
	return out
}

// writeBenchFile replaces the given parts of the file at path (by heading;
// "" is the top part) and keeps every other part as it was; parts the file
// did not have are added at the end, in the order given.
func writeBenchFile(path string, parts ...benchSection) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	sections := splitBenchFile(string(old))
	for _, p := range parts {
		if !strings.HasSuffix(p.body, "\n") {
			p.body += "\n"
		}
		replaced := false
		for i := range sections {
			if sections[i].heading == p.heading {
				sections[i], replaced = p, true
				break
			}
		}
		switch {
		case replaced:
		case p.heading == "":
			sections = append([]benchSection{p}, sections...)
		default:
			sections = append(sections, p)
		}
	}
	var sb strings.Builder
	for i, s := range sections {
		body := s.body
		if i+1 < len(sections) && !strings.HasSuffix(body, "\n\n") {
			body += "\n"
		}
		sb.WriteString(body)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// benchFacts is the line naming the machine, the Go version, the commit
// (DAVGW_BENCH_COMMIT, set by .ci/bench and .ci/load) and the time of a run.
func benchFacts() string {
	commit := os.Getenv("DAVGW_BENCH_COMMIT")
	if commit == "" {
		commit = "unknown commit"
	}
	return fmt.Sprintf("Machine: %s, %d cores, %s, %s; commit %s; run %s.", cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version(),
		commit, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

func TestWriteBenchFileKeepsTheOtherCommandsParts(t *testing.T) {
	path := t.TempDir() + "/BENCHMARKS.md"
	if err := writeBenchFile(path, benchSection{body: "# Benchmarks\n\ntable 1\n"}, benchSection{heading: "Kept times at scale", body: "## Kept times at scale\n\nfill 1\n"}); err != nil {
		t.Fatal(err)
	}
	if err := writeBenchFile(path, benchSection{heading: "Mixed load", body: "## Mixed load\n\nload 1\n"}); err != nil {
		t.Fatal(err)
	}
	if err := writeBenchFile(path, benchSection{body: "# Benchmarks\n\ntable 2\n"}, benchSection{heading: "Kept times at scale", body: "## Kept times at scale\n\nfill 2\n"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\ntable 2\n\n## Kept times at scale\n\nfill 2\n\n## Mixed load\n\nload 1\n"
	if string(got) != want {
		t.Errorf("BENCHMARKS.md after bench, load, bench:\n%s\nwant:\n%s", got, want)
	}
	if err := writeBenchFile(path, benchSection{heading: "Mixed load", body: "## Mixed load\n\nload 2\n"}); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if want := strings.Replace(want, "load 1", "load 2", 1); string(got) != want {
		t.Errorf("BENCHMARKS.md after a second load:\n%s\nwant:\n%s", got, want)
	}
}
