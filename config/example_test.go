package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestExampleDocumentsEveryKey keeps config.toml.example and Config in step.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the example parses, short of a bucket", func(t *testing.T) {
		_, err := Parse(data, env(nil))
		ps := problems(err)
		if len(ps) != 1 || ps[0].Key != "s3.bucket" {
			t.Fatalf("want only the missing bucket, got %v", err)
		}
	})
	t.Run("every key of Config appears in the example", func(t *testing.T) {
		var keys []string
		var walk func(reflect.Type)
		walk = func(ty reflect.Type) {
			for i := range ty.NumField() {
				f := ty.Field(i)
				if !f.IsExported() {
					continue // what Parse read, not a key
				}
				name := f.Tag.Get("toml")
				ft := f.Type
				if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
				if ft.Kind() == reflect.Map {
					// [s3.stores.NAME]: the keys of [s3] again, shown
					// as tables.
					if !regexp.MustCompile(`(?m)^#? ?\[s3\.` + name + `\.[a-z0-9_-]+\]`).Match(data) {
						t.Errorf("the tables of %q are not documented", name)
					}
					continue
				}
				keys = append(keys, name)
			}
		}
		walk(reflect.TypeOf(Config{}))
		for _, k := range keys {
			if !regexp.MustCompile(`(?m)^#{0,2}` + regexp.QuoteMeta(k) + ` = `).Match(data) {
				t.Errorf("key %q is not documented", k)
			}
		}
		if !strings.Contains(string(data), "[[auth.users]]") || !strings.Contains(string(data), "[[auth.rules]]") {
			t.Error("the arrays of tables are not documented")
		}
	})
}
