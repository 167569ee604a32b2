package gateway

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOperationsDocNamesRealSeries: every metric docs/operations.md tells
// operators to alert on (its table and its example rules) is one the
// gateway exports, with labels it has and label values it can take, so
// that an alert rule copied from the page can fire.
func TestOperationsDocNamesRealSeries(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	// Vectors without series are not gathered: give the two that start
	// empty one series each.
	m.requests.WithLabelValues("GET", "2xx")
	m.duration.WithLabelValues("GET")
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string][]string{} // family -> its label names
	for _, f := range families {
		var names []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
		labels[f.GetName()] = names
	}
	classes := []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
	values := map[string][]string{
		"method":       append(slices.Clone(metricMethods), "OTHER"),
		"status_class": classes,
		"kind":         s3ErrorKinds,
		"result":       uploadResults,
		"reason":       authReasons,
	}

	// A series as the page writes it: a name, then {label="v"} or
	// {label=~"a|b"} matchers, or the label names the table lists.
	series := regexp.MustCompile(`\b((?:davgw|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)
	matcher := regexp.MustCompile(`(\w+)\s*(=~|!=|=)?\s*(?:"([^"]*)")?`)
	seen := 0
	for _, s := range series.FindAllStringSubmatch(string(doc), -1) {
		name := s[1]
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && labels[b] != nil {
				base = b
			}
		}
		have, ok := labels[base]
		if !ok {
			t.Errorf("docs/operations.md names %s, which the gateway does not export", name)
			continue
		}
		seen++
		if s[2] == "" {
			continue
		}
		for _, mm := range matcher.FindAllStringSubmatch(strings.Trim(s[2], "{}"), -1) {
			label, op, val := mm[1], mm[2], mm[3]
			if !slices.Contains(have, label) {
				t.Errorf("docs/operations.md: %s has no label %q (it has %v)", name, label, have)
				continue
			}
			if op == "" {
				continue // the table lists label names
			}
			for _, v := range strings.Split(val, "|") {
				if !slices.Contains(values[label], v) {
					t.Errorf("docs/operations.md: %s{%s%s%q}: %q is not a value of %s (%v)", name, label, op, val, v, label, values[label])
				}
			}
		}
	}
	if seen < 10 {
		t.Errorf("docs/operations.md names only %d series; its monitoring section is missing?", seen)
	}
}
