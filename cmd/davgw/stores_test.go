package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/embedded"
)

// startEmbeddedStore starts the embedded S3 store for one test.
func startEmbeddedStore(t *testing.T) *embedded.Store {
	t.Helper()
	es, err := embedded.Start(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	return es
}

// storeTable is a store's table (TOML header name) on the embedded store
// es with bucket, prefix and secret.
func storeTable(es *embedded.Store, name, bucket, prefix, secret string) string {
	return fmt.Sprintf("[%s]\nendpoint = %q\nbucket = %q\nprefix = %q\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\n",
		name, es.Endpoint, bucket, prefix, es.AccessKeyID, secret)
}

// TestStoresThatShareSettingsShareAClient: openStores makes one S3 client
// for stores whose settings are the same but for the prefix (and the
// bucket), and a client of its own for a store that differs.
func TestStoresThatShareSettingsShareAClient(t *testing.T) {
	es := startEmbeddedStore(t)
	doc := storeTable(es, "s3", es.Bucket, "gw/", es.SecretAccessKey) + storeTable(es, "s3.stores.same", es.Bucket, "same/", es.SecretAccessKey) +
		storeTable(es, "s3.stores.other", es.Bucket, "other/", es.SecretAccessKey) + "part_size = \"32MiB\"\n"
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	stores, err := openStores(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	def, same, other := stores[""], stores["same"], stores["other"]
	if def.Store != same.Store {
		t.Error("two stores with the same settings have two clients")
	}
	if def.Store == other.Store {
		t.Error("a store with another part size shares the default store's client")
	}
	if def.Prefix != "gw/" || same.Prefix != "same/" || other.Prefix != "other/" {
		t.Errorf("prefixes %q %q %q", def.Prefix, same.Prefix, other.Prefix)
	}
	if other.Store.PartSize() != 32<<20 {
		t.Errorf("other's part size %d", other.Store.PartSize())
	}
}

// TestServeRoutesEachUserToTheStoreItsRootNames runs `davgw serve` with a
// named store: a user whose root is "side:teams/{username}/" writes under
// the store's prefix, a user of the default store under [s3].prefix.
func TestServeRoutesEachUserToTheStoreItsRootNames(t *testing.T) {
	es := startEmbeddedStore(t)
	hash, err := auth.HashPasswordCost("pw", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	doc := storeTable(es, "s3", es.Bucket, "gw/", es.SecretAccessKey) + storeTable(es, "s3.stores.side", es.Bucket, "side/", es.SecretAccessKey) + fmt.Sprintf(`
[[auth.users]]
name = "fay"
password_hash = %q
root = "side:teams/{username}/"

[[auth.users]]
name = "dan"
password_hash = %q
`, hash, hash)
	cfgFile := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfgFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	url, _, stop := serveWith(t, "-config", cfgFile)
	defer stop()
	for _, u := range []struct{ name, key string }{{"fay", "side/teams/fay/f.txt"}, {"dan", "gw/users/dan/f.txt"}} {
		req, err := http.NewRequest(http.MethodPut, url+"f.txt", strings.NewReader(u.name))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(u.name, "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s's PUT: %d", u.name, resp.StatusCode)
		}
		if n := countKeys(t, es, u.key); n != 1 {
			t.Errorf("%s's file is not at %s (%d keys)", u.name, u.key, n)
		}
	}
	if n := countKeys(t, es, "side/teams/dan/") + countKeys(t, es, "gw/teams/fay/") + countKeys(t, es, "gw/users/fay/"); n != 0 {
		t.Errorf("%d keys in the other store's place", n)
	}
}

// TestReloadRefusesToChangeTheStores: SIGHUP with a store added changes
// nothing and says to restart (a root could name a store without a client).
func TestReloadRefusesToChangeTheStores(t *testing.T) {
	es := startEmbeddedStore(t)
	one := storeTable(es, "s3", es.Bucket, "gw/", es.SecretAccessKey)
	cfgFile := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfgFile, []byte(one), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	two := one + storeTable(es, "s3.stores.more", es.Bucket, "more/", es.SecretAccessKey) + "[auth]\nroot = \"more:users/{username}/\"\n"
	if err := os.WriteFile(cfgFile, []byte(two), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r := &configReloader{path: cfgFile, log: slog.New(slog.NewTextHandler(&logs, nil)), cfg: cfg}
	r.reload()
	if r.cfg != cfg {
		t.Error("the reload applied a config with another set of stores")
	}
	if !strings.Contains(logs.String(), "restart to change the stores") {
		t.Errorf("the refusal does not say to restart: %s", logs.String())
	}
}
