package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// expandEnv replaces ${NAME} in every string value of c (NAME is
// [A-Za-z_][A-Za-z0-9_]*). A variable that is not set is a problem naming
// the key and the variable, never the value. "$${" writes a literal "${".
func expandEnv(c *Config, lookup func(string) (string, bool)) []error {
	var problems []error
	walkStrings(reflect.ValueOf(c).Elem(), "", func(key string, v reflect.Value) {
		s := v.String()
		if !strings.Contains(s, "${") {
			return
		}
		out, err := expandString(s, lookup)
		if err != nil {
			problems = append(problems, &Problem{Key: key, Msg: err.Error()})
			return
		}
		v.SetString(out)
	})
	return problems
}

// walkStrings calls fn for every settable string field (and string slice
// element) below v, with its dotted TOML key.
func walkStrings(v reflect.Value, key string, fn func(string, reflect.Value)) {
	switch v.Kind() {
	case reflect.String:
		fn(key, v)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("toml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			k := name
			if key != "" {
				k = key + "." + name
			}
			walkStrings(v.Field(i), k, fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", key, i), fn)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(v.Elem(), key, fn)
		}
	case reflect.Map:
		// Maps of pointers only ([s3.stores.NAME]): their values are
		// settable through the pointer.
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			walkStrings(v.MapIndex(k), key+"."+k.String(), fn)
		}
	}
}

func expandString(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			// "$${" is an escaped "${".
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in value")
		}
		name := s[i+2 : i+end]
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment variable name in ${...}: use letters, digits and _")
		}
		val, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
