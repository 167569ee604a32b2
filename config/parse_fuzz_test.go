package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzConfig: parsing a config file never panics; what Parse accepts is
// valid (Validate finds nothing more) and round-trips: written back as
// TOML and parsed again, it is the same Config.
func FuzzConfig(f *testing.F) {
	noEnv := func(string) (string, bool) { return "", false }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, noEnv)
		if err != nil {
			if c != nil {
				t.Fatalf("%q: a Config with the error %v", data, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: accepted, then Validate: %v", data, err)
		}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(c); err != nil {
			t.Fatalf("%q: accepted, cannot be written back: %v", data, err)
		}
		if strings.Contains(b.String(), "$") {
			return // "$${" was written as "${", which would now name a variable
		}
		c2, err := Parse(b.Bytes(), noEnv)
		if err != nil {
			t.Fatalf("%q: written back as %q, refused: %v", data, b.Bytes(), err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("%q: written back as %q, parsed again differently:\n%+v\n%+v", data, b.Bytes(), c, c2)
		}
	})
}
