package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckProbesEveryStore: `davgw check` probes [s3] and each
// [s3.stores.NAME] (one of them with bucket = "*") and names the store on
// every line of its probes; a store that fails fails the check.
func TestCheckProbesEveryStore(t *testing.T) {
	es := startEmbeddedStore(t)
	for _, tc := range []struct {
		name        string
		otherSecret string
		wantCode    int
		want        []string
	}{
		{"every store passes and is named", es.SecretAccessKey, exitOK, []string{
			"✓ put gw/.davgw-check-", "(PutObject) [store default]\n",
			"✓ put other/.davgw-check-", "(PutObject) [store other]\n",
			"✓ buckets listed (ListBuckets) [store all]\n",
			"✓ 1 bucket(s) to show as folders [store all]\n",
			"✓ list " + es.Bucket + "/ (ListObjectsV2) [store all]\n",
			"- writes not probed: a store of every bucket has no one bucket for a scratch key [store all]\n",
		}},
		{"a failing store fails the check, named", "WrongSecret123", exitRuntime, []string{
			"(PutObject) [store default]\n",
			"✗ bucket " + es.Bucket + " reachable (HeadBucket) [store other]: ",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := storeTable(es, "s3", es.Bucket, "gw/", es.SecretAccessKey) +
				storeTable(es, "s3.stores.other", es.Bucket, "other/", tc.otherSecret) +
				storeTable(es, "s3.stores.all", "*", "", es.SecretAccessKey)
			cfgFile := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfgFile, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := run(t.Context(), []string{"check", "-config", cfgFile}, strings.NewReader(""), &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "WrongSecret123") {
				t.Error("the secret is printed")
			}
		})
	}
}
